"""One mailbox, however it is spelled: the address we deliver to and the identity we deduplicate on.

An address reaches the API in many spellings of the same mailbox: letter case, compatibility forms
(full-width letters, a full-width @, the Kelvin sign for K), and an internationalized domain as
Unicode (U-labels, bücher.de) or ASCII (A-labels, xn--bcher-kva.de). The rules:

- Unicode NFKC normalization of the whole address, which folds compatibility forms into their
  plain letters, then a split at the last @.
- The domain goes through IDNA 2008 with the UTS #46 mapping (the `idna` library) to lower-case
  A-labels, without a trailing dot: every spelling of a domain becomes one ASCII name.
- The local part must then be ASCII: mail to a non-ASCII local part needs SMTPUTF8, which the
  mail path does not promise.
- Identity ignores letter case in the local part (Unicode case folding). RFC 5321 allows a server
  to tell `Ada` from `ada`, but mail providers do not, and two signups for one inbox are worse.

The delivery address keeps the local part's case as first given; the identity is stored beside it
and is unique in the database (signups.Signup.email_canonical).
"""

from __future__ import annotations

import unicodedata

import idna


class InvalidMailbox(ValueError):
    """The text cannot be an address we can deliver to."""


def delivery_address(text: str) -> str:
    """The address to send to: NFKC-normalized, domain in lower-case A-labels."""
    address = unicodedata.normalize("NFKC", text.strip())
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidMailbox("an email address needs a part before and after @")
    if not local.isascii():
        raise InvalidMailbox("the part before @ must be ASCII")
    try:
        mapped = idna.uts46_remap(domain, std3_rules=True, transitional=False).rstrip(".")
        ascii_domain = idna.encode(mapped, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise InvalidMailbox(f"the domain is not a valid host name: {exc}") from None
    return f"{local}@{ascii_domain}"


def identity(address: str) -> str:
    """The mailbox identity of a delivery address: its local part case-folded."""
    local, _, domain = address.rpartition("@")
    return f"{unicodedata.normalize('NFKC', local.casefold())}@{domain}"
