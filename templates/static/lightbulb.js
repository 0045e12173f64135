// Lightbulb dashboard: live refresh of [data-refresh] blocks and tooltips for
// chart points and strip cells. Everything works without it.
(function () {
  "use strict";
  var tip = null;
  function showTip(event) {
    var el = event.target;
    var label = el.getAttribute && el.getAttribute("data-label");
    if (!label && el.querySelector) {
      var title = el.querySelector(":scope > title");
      label = title ? title.textContent : "";
    }
    if (!tip) { tip = document.getElementById("tip"); }
    if (!tip) { return; }
    if (!label) { tip.hidden = true; return; }
    tip.textContent = label;
    tip.hidden = false;
    tip.style.left = (event.clientX + 12) + "px";
    tip.style.top = (event.clientY + 12) + "px";
  }
  document.addEventListener("mouseover", showTip);
  document.addEventListener("mousemove", showTip);

  function refresh(block) {
    var seconds = parseInt(block.getAttribute("data-refresh"), 10) || 15;
    window.setTimeout(function () {
      var url = new URL(window.location.href);
      fetch(url.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.querySelector("[data-refresh]");
          var active = document.activeElement;
          var typing = active && block.contains(active) && active.tagName === "INPUT";
          if (fresh && !typing) { block.replaceWith(fresh); block = fresh; }
        })
        .catch(function () { /* keep the page as it is; try again next time */ })
        .then(function () { refresh(block); });
    }, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var block = document.querySelector("[data-refresh]");
    if (block) { refresh(block); }
  });
})();
