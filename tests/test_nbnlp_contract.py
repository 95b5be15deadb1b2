"""The space contract of tests/test_contract.py, run on the NAS-Bench-NLP space.

``tests/test_contract.py`` runs every space of its ``SPACES`` through the same checks
(sampling, uniformity, mutation among neighbours, encodings, tokens and their refusals,
strings, index, describe, no metric held); until its ``SPACES`` has a line for
:class:`oracles.nbnlp_space.NBNLPSpace` (docs/nbnlp.md, "Registry"), this module calls those
check functions themselves on the space of a 300-id subset of the shared table, so the
contract is enforced either way.
"""

from __future__ import annotations

import pytest

import test_contract as contract
from conftest import SHARED_DATA, require

CHECKS = [
    contract.test_sampling_is_deterministic_and_lands_in_the_space,
    contract.test_sampling_is_uniform_on_a_finite_space,
    contract.test_mutation_is_deterministic_valid_and_never_the_architecture,
    contract.test_mutation_draws_among_the_neighbours,
    contract.test_neighbours_are_valid_distinct_and_deterministic,
    contract.test_encoding_has_its_size_and_agrees_with_encode_all,
    contract.test_tokens_lie_in_the_decisions_and_round_trip,
    contract.test_from_tokens_refuses_what_is_not_an_architecture,
    contract.test_strings_round_trip,
    contract.test_parse_refuses_garbage,
    contract.test_index_and_arch_round_trip,
    contract.test_identities_all_agree_with_identity,
    contract.test_describe_says_what_the_space_is,
    contract.test_a_space_built_from_a_table_holds_none_of_its_metrics,
]


@pytest.fixture(scope="module")
def nbnlp_case():
    from oracles.importers.nbnlp import build_table
    from oracles.nbnlp_space import space_from_table
    table = build_table(require(SHARED_DATA / "nbnlp" / "nbnlp_ptb.csv.gz"), ids=range(1000000, 1000300))
    return contract.SpaceCase(space_from_table(table), table)


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[len("test_"):] for c in CHECKS])
def test_space_contract(check, nbnlp_case):
    check(nbnlp_case)
