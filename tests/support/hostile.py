"""Hostile text a check, a log line or a label can carry into a notice (reusable)."""

from __future__ import annotations

# Each one tries to be markup, a mention, a header or a link in some channel.
HOSTILE_TEXTS = [
    "<!channel> & <@U0ADMIN>",  # Slack: ping everyone, mention a user
    "<!here|here> <!everyone> <!subteam^S123|@oncall>",
    "<https://evil.example/|click here>",  # Slack link with a lying label
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "**bold** _it_ [link](https://evil.example) ![img](https://evil.example/x.png)",
    "# heading\n> quote\n- item",
    "line one\r\nBcc: victim@example.com\r\nSubject: forged",  # header injection
    "tab\tbell\x07null\x00escape\x1b[31mred",
    "&amp; &lt;already&gt; &#60;entity&#62;",
    "\u2028line separator\u2029paragraph",
]

# Ids a Temporal server accepts (workflow, schedule) that try to forge a line, break
# an HTML attribute, reverse the text around them or flood a row.
HOSTILE_IDS = [
    "line1\nERROR forged log line\r\nx",
    "\u202eevil\x00nul",
    "<script>alert(1)</script>",
    "L" * 990,  # with a 7-character suffix, near the server's 1000-character limit
]
