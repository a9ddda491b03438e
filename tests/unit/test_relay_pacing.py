"""How often relays claim: together about as often as one relay would, so batches do not shrink with their number."""

from relay.outbox_relay import next_claim_at


def test_a_relay_alone_claims_again_once_the_interval_has_passed_or_at_once_after_a_long_claim() -> None:
    assert next_claim_at(10.0, 0.001, 0.005, 1) == 10.005
    assert next_claim_at(10.0, 0.030, 0.005, 1) == 10.030  # the claim ended then: no wait


def test_several_relays_each_wait_a_claims_duration_per_other_relay() -> None:
    assert next_claim_at(10.0, 0.001, 0.005, 2) == 10.010  # the interval once per live relay
    assert next_claim_at(10.0, 0.030, 0.005, 2) == 10.060  # the other relay claims meanwhile
    assert next_claim_at(10.0, 0.030, 0.005, 3) == 10.090
