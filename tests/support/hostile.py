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

# Credentials written in a URL's userinfo (user, password as written in the URL, the
# password decoded): percent-escapes, non-ASCII, control characters, short and 1-char.
HOSTILE_USERINFO = [
    ("alice", "InlinePw42", "InlinePw42"),
    ("carol", "P%40ss%3Aw%2Frd99", "P@ss:w/rd99"),
    ("hank", "Hank%E2%82%ACPw9", "Hank\u20acPw9"),
    ("jo", "JoPw%0d%0aXyz12", "JoPw\r\nXyz12"),
    ("sam", "Sh0r", "Sh0r"),
    ("tim", "Q7", "Q7"),
    ("una", "z", "z"),
]
