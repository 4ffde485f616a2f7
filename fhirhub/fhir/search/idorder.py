"""Buckets of `_id` order, so a page of a large result is read bucket by bucket (pure).

A resource id maps to ORDER_DEPTH hex digits that never disagree with id order: ids
compare as strings, and the digits of a smaller id are never larger. Lowercase hex
characters (server-assigned ids are uuid4s) map to themselves, so for those ids the buckets
are their own prefixes and split the ids evenly, 16 ways per level. Other characters map
to the neighbouring hex digit and fill the remaining digits with the lowest or highest
digit, which keeps the order (such ids share few buckets; a bucket is still read whole).
The document stores the type-qualified prefixes of every length ('Patient:a', 'Patient:a7',
...), so one equality names one bucket at any level.
"""

from __future__ import annotations

ORDER_DEPTH = 4
HEX = "0123456789abcdef"


def id_digits(resource_id: str, depth: int = ORDER_DEPTH) -> str:
    digits: list[str] = []
    for char in resource_id[:depth]:
        if char in HEX:
            digits.append(char)
            continue
        if char < "0":  # '-' and '.': before every digit
            digits.append("0")
            pad = "0"
        elif char < "a":  # 'A'-'Z' (and '9' < char): between '9' and 'a'
            digits.append("9")
            pad = "f"
        else:  # 'g'-'z': after 'f'
            digits.append("f")
            pad = "f"
        digits += [pad] * (depth - len(digits))
        break
    digits += ["0"] * (depth - len(digits))
    return "".join(digits)


def bucket_key(resource_type: str, digits: str) -> str:
    return f"{resource_type}:{digits}"


def order_keys(resource_type: str, resource_id: str) -> list[str]:
    digits = id_digits(resource_id)
    return [bucket_key(resource_type, digits[:n]) for n in range(1, ORDER_DEPTH + 1)]
