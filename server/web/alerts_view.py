"""Alerts as the pages and the API show them, from the engine or (standalone) storage."""

from __future__ import annotations

from typing import Any

from server.web.context import WebContext

ORDER = {"firing": 0, "pending": 1, "resolved": 2}


def current_alerts(ctx: WebContext) -> list[dict[str, Any]]:
    if ctx.alerts is not None:
        items = ctx.alerts.alerts()
    else:
        items = [
            {
                "id": f"{r['rule_id']}:{r['service_id']}",
                "rule_id": r["rule_id"],
                "rule_name": r["rule_id"],
                "service_id": r["service_id"],
                "state": r["state"],
                "severity": r["severity"],
                "since": r["since"].isoformat(),
                "value": r["value"],
                "message": r["message"],
                "suppressed": r["result"] if r["result"] in ("silenced", "inhibited", "flapping")
                else None,
                "caused_by": r["caused_by"] or None,
            }
            for r in ctx.reader.alert_states()
        ]  # fmt: skip
    items.sort(key=lambda a: (ORDER.get(a["state"], 3), a.get("since") or ""))
    return items
