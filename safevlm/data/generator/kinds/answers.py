"""Target answers of generated records: refusals by risk type and level, helpful answers to
benign requests, and filled response templates, each with whether it is held out.

Owns the choice of template from responses.json; not which record gets which (the kinds).
"""

from __future__ import annotations

import numpy as np

from safevlm.data.generator.texts import (
    Request,
    Variant,
    choose_variant,
    fill_template,
    refusal_variants,
    response_set,
    second_person,
)


def filled_response(variants, split: str, rng: np.random.Generator, **values: str) -> Variant:
    """A response template of the set, chosen for the split and filled with `values`."""
    chosen = choose_variant(variants, split, rng)
    return Variant(fill_template(chosen.text, values), chosen.held_out)


def refusal_response(type_name: str, level: int, split: str, rng: np.random.Generator) -> Variant:
    return choose_variant(refusal_variants(type_name, level), split, rng)


def helpful_response(
    request: Request, title: str, split: str, rng: np.random.Generator, as_list: bool
) -> Variant:
    if request.form == "action":
        name = "list_completion" if as_list else "helpful_action"
        return filled_response(response_set(name), split, rng, action=second_person(request.text))
    return filled_response(response_set("helpful_title"), split, rng, title=title)


def request_response(
    request: Request, title: str, refuse: bool, split: str, rng: np.random.Generator, as_list: bool
) -> Variant:
    """A refusal of a risky request, or a helpful answer (as a list when asked for one)."""
    if refuse:
        return refusal_response(request.type, request.level, split, rng)
    return helpful_response(request, title, split, rng, as_list)
