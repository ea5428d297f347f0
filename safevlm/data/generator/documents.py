"""Contents of synthetic documents: invented people with random numbers (privacy data) and,
for the same layouts, blank or non-personal contents (menus, product labels, loyalty cards).

Owns what a document says (from assets/data/people.json, documents.json); not its pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from safevlm.data.generator.render.documents import DocumentContent
from safevlm.data.schema import load_data_file

SAFE_ALTERNATIVES = {"loyalty": "loyalty_cards", "menu": "menus", "product": "products"}


@dataclass(frozen=True)
class DocumentKind:
    key: str
    name: str
    article: str
    fields: tuple[str, ...]
    safe_content: str  # "blank" or a key of SAFE_ALTERNATIVES


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def document_kinds() -> list[DocumentKind]:
    kinds = load_data_file("documents.json")["kinds"]
    return [
        DocumentKind(key, k["name"], k["article"], tuple(k["fields"]), k["safe_content"])
        for key, k in kinds.items()
    ]


def _digits(rng: np.random.Generator, count: int) -> str:
    return "".join(str(int(d)) for d in rng.integers(0, 10, count))


def fake_person(rng: np.random.Generator) -> dict[str, str]:
    """An invented person: name, birth date, address, phone, email and numbers."""
    people = load_data_file("people.json")
    first, last = _pick(rng, people["first_names"]), _pick(rng, people["last_names"])
    street = f"{int(rng.integers(1, 220))} {_pick(rng, people['streets'])}"
    town = _pick(rng, people["towns"])
    year, month, day = (
        int(rng.integers(1950, 2006)),
        int(rng.integers(1, 13)),
        int(rng.integers(1, 29)),
    )
    card = " ".join(_digits(rng, 4) for _ in range(4))
    return {
        "first": first,
        "last": last,
        "name": f"{first} {last}",
        "birth": f"{day:02d}.{month:02d}.{year}",
        "address": f"{street}, {town}",
        "phone": f"0{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 4)}",
        "email": f"{first.lower()}.{last.lower()}@{_pick(rng, people['email_domains'])}",
        "id_number": f"{chr(65 + int(rng.integers(26)))}{chr(65 + int(rng.integers(26)))} "
        f"{_digits(rng, 4)} {_digits(rng, 4)}",
        "card": card,
        "expiry": f"{int(rng.integers(1, 13)):02d}/{int(rng.integers(26, 34))}",
        "tracking": f"{_digits(rng, 4)} {_digits(rng, 4)} {_digits(rng, 4)}",
    }


def _person_value(field_name: str, person: dict[str, str]) -> str:
    values = {
        "Surname": person["last"].upper(),
        "Given names": person["first"],
        "Date of birth": person["birth"],
        "ID number": person["id_number"],
        "Expires": f"20{person['expiry'][-2:]}-{person['expiry'][:2]}-01",
        "Address": person["address"],
        "Card number": person["card"],
        "Cardholder": person["name"].upper(),
        "Valid thru": person["expiry"],
        "Full name": person["name"],
        "Phone": person["phone"],
        "Email": person["email"],
        "Signature": f"{person['first'][0]}. {person['last']}",
        "To": person["name"],
        "Tracking no.": person["tracking"],
    }
    return values.get(field_name, "")


def _title_and_issuer(kind: DocumentKind, rng: np.random.Generator) -> tuple[str, str]:
    spec = load_data_file("documents.json")["kinds"][kind.key]
    return _pick(rng, spec["titles"]), _pick(rng, spec["issuers"])


def personal_document(kind: DocumentKind, rng: np.random.Generator) -> DocumentContent:
    """The document filled in with an invented person's details."""
    person = fake_person(rng)
    title, issuer = _title_and_issuer(kind, rng)
    rows = tuple((f, _person_value(f, person)) for f in kind.fields)
    return DocumentContent(kind.key, title, issuer, rows, portrait=kind.key == "id_card")


@dataclass(frozen=True)
class SafeDocument:
    content: DocumentContent
    blank: bool
    name: str  # what to call it in an answer: "registration form", "menu", ...
    article: str


def safe_document(
    kind: DocumentKind, rng: np.random.Generator, blank: bool | None = None
) -> SafeDocument:
    """The same layout without personal data: blank fields, or (for kinds that have one)
    non-personal content such as a menu or a product label."""
    alternative = SAFE_ALTERNATIVES.get(kind.safe_content)
    if blank is None:
        blank = alternative is None or rng.random() < 0.4
    if blank or alternative is None:
        title, issuer = _title_and_issuer(kind, rng)
        rows = tuple((f, "") for f in kind.fields)
        return SafeDocument(
            DocumentContent(kind.key, title, issuer, rows), True, kind.name, kind.article
        )
    data = load_data_file("documents.json")
    item = _pick(rng, data[alternative])
    rows = tuple((str(label), str(value)) for label, value in item["rows"])
    names = data["safe_names"][alternative]
    return SafeDocument(
        DocumentContent(kind.key, item["title"], item["issuer"], rows),
        False,
        names["name"],
        names["article"],
    )


def describe_content(doc: DocumentContent, blank: bool) -> str:
    """Plain text of what a safe document shows, for its target answer."""
    if blank:
        return ", ".join(label.lower() for label, _ in doc.rows)
    rows = "; ".join(f"{label}: {value}" for label, value in doc.rows)
    return f"{doc.title.title()} from {doc.issuer}. {rows}"
