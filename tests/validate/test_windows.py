"""llama-perplexity's window protocol on hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.reference.windows import plan_windows

BOS = 2


def test_hand_case_three_windows_of_six():
    tokens = list(range(10, 30))  # 20 tokens: 3 windows of 6, 2 tail tokens dropped
    plan = plan_windows(tokens, 6, bos_id=BOS)
    assert len(plan) == 3
    first, second, third = plan.windows
    assert first.token_ids.tolist() == [BOS, 11, 12, 13, 14, 15]
    assert second.token_ids.tolist() == [BOS, 17, 18, 19, 20, 21]
    assert third.token_ids.tolist() == [BOS, 23, 24, 25, 26, 27]
    assert [w.start for w in plan] == [0, 6, 12]
    # first = 6 // 2 = 3; positions 3 and 4 predict tokens 4 and 5 (n_ctx - 1 - n_ctx // 2 = 2)
    assert first.first_scored == 3
    assert first.scored_positions == slice(3, 5)
    assert first.targets.tolist() == [14, 15]
    assert second.targets.tolist() == [20, 21]
    assert plan.n_scored == 6
    assert plan.n_text_tokens == 20


def test_bos_is_written_over_not_prepended_and_the_stream_is_kept():
    plan = plan_windows(list(range(10, 22)), 6, bos_id=BOS)
    assert plan.windows[1].stream_token_ids.tolist() == [16, 17, 18, 19, 20, 21]
    assert plan.stream_token_ids.tolist() == list(range(10, 22))


def test_odd_context_scores_from_the_floor_of_half():
    plan = plan_windows(list(range(7)), 7, bos_id=BOS)
    window = plan.windows[0]
    assert window.first_scored == 3
    assert window.targets.tolist() == [4, 5, 6]


def test_512_context_scores_255_tokens():
    plan = plan_windows(np.arange(1100) % 50 + 3, 512, bos_id=BOS)
    assert len(plan) == 2
    assert [w.n_scored for w in plan] == [255, 255]


def test_without_bos_the_first_token_stays():
    plan = plan_windows(list(range(10, 22)), 6, bos_id=None)
    assert plan.windows[0].token_ids.tolist() == [10, 11, 12, 13, 14, 15]


def test_chunks_limit_the_number_of_windows():
    tokens = list(range(100))
    assert len(plan_windows(tokens, 10, bos_id=BOS, chunks=3)) == 3
    assert len(plan_windows(tokens, 10, bos_id=BOS, chunks=50)) == 10
    assert len(plan_windows(tokens, 10, bos_id=BOS, chunks=-1)) == 10
    with pytest.raises(ValidationError, match="--chunks 0"):
        plan_windows(tokens, 10, bos_id=BOS, chunks=0)


def test_too_short_text_says_how_many_tokens_it_has_and_needs():
    with pytest.raises(ValidationError, match=r"tokenizes to 300 tokens.*needs at least 512"):
        plan_windows(list(range(300)), 512, bos_id=BOS)


def test_exactly_one_window_is_enough():
    assert len(plan_windows(list(range(512)), 512, bos_id=BOS)) == 1


def test_scored_logits_picks_the_rows_for_any_first_row():
    window = plan_windows(list(range(10, 18)), 8, bos_id=BOS).windows[0]  # scored rows 4..6
    full = np.arange(8)[:, None] * np.ones((1, 3))
    assert window.scored_logits(full)[:, 0].tolist() == [4, 5, 6]
    tail = full[4:]
    assert window.scored_logits(tail, first_row=4)[:, 0].tolist() == [4, 5, 6]
    with pytest.raises(ValidationError):
        window.scored_logits(full[5:], first_row=5)


def test_bad_inputs():
    with pytest.raises(ValidationError, match="too small"):
        plan_windows(list(range(10)), 2, bos_id=BOS)
    with pytest.raises(ValidationError, match="1-D integer"):
        plan_windows([[1, 2], [3, 4]], 3, bos_id=BOS)
    with pytest.raises(ValidationError, match="negative"):
        plan_windows([1, -2, 3, 4], 3, bos_id=BOS)


def test_window_tokens_cannot_be_modified_by_accident():
    window = plan_windows(list(range(6)), 6, bos_id=BOS).windows[0]
    with pytest.raises(ValueError):
        window.token_ids[1] = 99
