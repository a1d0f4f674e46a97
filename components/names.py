"""File and folder names as every artifact and report writes them: escaped, printable UTF-8.

A name on disk is a byte string: it may not be UTF-8 (Latin-1 from an old camera
or archive), and it may hold newlines, tabs or other characters that break a
line-based file or a table.  ``escape`` turns it into one printable line that
maps back to the exact bytes with ``unescape``:

* ``\\`` stands for a backslash;
* ``\\n``, ``\\r``, ``\\t`` and ``\\xHH`` (HH below 80) for control characters;
* ``\\xHH`` (HH 80 or more) for a byte that is not part of valid UTF-8;
* ``\\uHHHH`` / ``\\UHHHHHHHH`` for any other character that does not print
  (a no-break space, a line separator, a byte-order mark).

Everything else, including spaces and non-Latin scripts, is kept as it is.
Ordinary names are unchanged, so the escaped form of ``ants/0013035.jpg`` is
``ants/0013035.jpg``.
"""

import os
import re
from typing import Union

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_UNNAMED = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[nrt\\])")
# Python decodes a byte that is not valid UTF-8 as a lone surrogate in this range ("surrogateescape").
_SURROGATE_BYTES = range(0xDC80, 0xDD00)


def escape(name: Union[str, bytes]) -> str:
    """The printable form of ``name``: raw bytes, or a str as ``os`` returns it
    (undecodable bytes as surrogates)."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    else:  # a str may carry surrogates from os.listdir; re-decode so every valid UTF-8 run reads as text
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    out = []
    for char in name:
        code = ord(char)
        if char in _NAMED:
            out.append(_NAMED[char])
        elif code in _SURROGATE_BYTES:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def unescape(escaped: str) -> bytes:
    """The exact bytes of the name ``escaped`` came from."""
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(escaped):
        out += escaped[position:match.start()].encode("utf-8")
        token = match.group(1)
        if token[0] == "x":
            out.append(int(token[1:], 16))
        elif token[0] in "uU":
            out += chr(int(token[1:], 16)).encode("utf-8")
        else:
            out += _UNNAMED[token].encode("utf-8")
        position = match.end()
    out += escaped[position:].encode("utf-8")
    return bytes(out)


def os_path(escaped: str) -> str:
    """The str ``os`` and ``open`` take for the escaped name (undecodable bytes as surrogates)."""
    return os.fsdecode(unescape(escaped))


def markdown_code(text: str) -> str:
    """``text`` as a Markdown code span: every character shows as it is (a backtick
    run inside gets a longer fence).  In a table cell, ``|`` still needs escaping."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") or not text.strip() else text
    return f"{fence}{padded}{fence}"
