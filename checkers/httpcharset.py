"""Which text encoding an HTTP body is in: WHATWG's sniffing order and label meanings.

Used by :meth:`checkers.httpconn.Response.text`; kept apart from the connection
code because it is pure bytes-to-codec logic with its own sources (the WHATWG
Encoding and HTML standards) and nothing to do with sockets.
"""

from __future__ import annotations

import codecs
import re

_CHARSET = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)""")

# Byte order marks, checked first: a BOM beats any declaration (WHATWG Encoding,
# "decode", and HTML's "determining the character encoding", step 1).
BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))
# Labels whose WHATWG meaning differs from Python's codec of the same name
# (https://encoding.spec.whatwg.org/#names-and-labels): browsers and every HTML
# parser read "iso-8859-1"/"ascii" as windows-1252 and "utf-16" as UTF-16LE.
WHATWG_LABELS = {
    **dict.fromkeys(
        ("ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1",
         "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1",
         "us-ascii", "windows-1252", "x-cp1252"),
        "cp1252",
    ),
    **dict.fromkeys(
        ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16",
         "utf-16le"),
        "utf-16-le",
    ),
    **dict.fromkeys(("unicodefffe", "utf-16be"), "utf-16-be"),
}  # fmt: skip


def sniff_encoding(content_type: str | None, body: bytes) -> tuple[str, int]:
    """(Python codec, bytes of BOM to skip) for a body, in the WHATWG order.

    1. a byte order mark (UTF-8, UTF-16BE, UTF-16LE), whatever is declared;
    2. the ``charset`` of ``Content-Type``;
    3. in the first 1024 bytes, an XML declaration's ``encoding`` or an HTML
       ``<meta charset>`` (a UTF-16 one means UTF-8: the bytes read as ASCII);
    4. UTF-8.
    Labels are read as WHATWG defines them (``iso-8859-1`` is windows-1252);
    an unknown label is skipped. Source: https://html.spec.whatwg.org/multipage/
    parsing.html#determining-the-character-encoding and
    https://encoding.spec.whatwg.org/#decode.
    """
    for bom, codec in BOMS:
        if body.startswith(bom):
            return codec, len(bom)
    if content_type:
        match = _CHARSET.search(content_type.encode("latin-1", "replace"))
        if match:
            declared = _codec(match.group(1))
            if declared:
                return declared, 0
    head = body[:1024]
    match = _XML_ENCODING.match(head)
    if match is None and b"<meta" in head.lower():
        match = _CHARSET.search(head)
    if match:
        found = _codec(match.group(1))
        if found:
            return ("utf-8" if found.startswith("utf-16") else found), 0
    return "utf-8", 0


def declared_charset(content_type: str | None, body: bytes) -> str:
    """The codec :func:`sniff_encoding` picks (a BOM, the header, the document; utf-8)."""
    return sniff_encoding(content_type, body)[0]


def _codec(label: bytes) -> str | None:
    """Python's codec for a charset label, WHATWG's meaning first; None if unknown."""
    name = label.decode("ascii", "replace").strip().lower()
    if name in WHATWG_LABELS:
        return WHATWG_LABELS[name]
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None
