"""``PromptCalibration``: the fit of a backend's template cost, its sampling and its bounds."""

from __future__ import annotations

from interlock.gateway.usage.calibration import EAGER, EVERY, MODELS, WINDOW, PromptCalibration, PromptShape


def _llama(messages: int, tools: bool) -> int:
    """Llama 3.1's template cost beyond the estimate's own (3 a message, 3 for the reply)."""
    return 27 + 2 * messages + (150 if tools else 0)


def test_nothing_is_corrected_before_a_sample():
    assert PromptCalibration().correction("m", PromptShape(3, False)) == 0


def test_a_fixed_and_a_per_message_cost_are_both_learned():
    calibration = PromptCalibration()
    for messages in (1, 2, 5, 9, 3):
        calibration.add("m", PromptShape(messages, False), 100, 100 + _llama(messages, False))
    for messages in (1, 4, 20):
        assert calibration.correction("m", PromptShape(messages, False)) == _llama(messages, False)


def test_tools_are_learned_apart_and_fall_back_to_the_other_fit():
    calibration = PromptCalibration()
    calibration.add("m", PromptShape(2, False), 50, 50 + _llama(2, False))
    assert calibration.correction("m", PromptShape(2, True)) == _llama(2, False), "the only fit there is"
    calibration.add("m", PromptShape(2, True), 80, 80 + _llama(2, True))
    assert calibration.correction("m", PromptShape(2, True)) == _llama(2, True)
    assert calibration.correction("m", PromptShape(2, False)) == _llama(2, False)


def test_models_are_apart():
    calibration = PromptCalibration()
    calibration.add("llama", PromptShape(1, False), 10, 40)
    assert calibration.correction("gpt", PromptShape(1, False)) == 0


def test_only_the_last_window_counts():
    calibration = PromptCalibration()
    for _ in range(WINDOW):
        calibration.add("m", PromptShape(2, False), 100, 500)
    for _ in range(WINDOW):
        calibration.add("m", PromptShape(2, False), 100, 110)
    assert calibration.correction("m", PromptShape(2, False)) == 10


def test_a_wild_report_is_clamped():
    calibration = PromptCalibration()
    calibration.add("m", PromptShape(1, False), 10, 10**9)
    assert calibration.correction("m", PromptShape(1, False)) <= 4096
    calibration.add("m", PromptShape(1, False), 0, 50)  # no estimate: nothing to learn
    calibration.add("m", PromptShape(1, False), 50, 0)  # no report: nothing to learn


def test_sampling_is_eager_then_sparse_and_bounded_in_models():
    calibration = PromptCalibration()
    wanted = [calibration.wants_sample("m") for _ in range(EAGER + 4 * EVERY)]
    assert all(wanted[:EAGER])
    assert sum(wanted[EAGER:]) == 4
    for i in range(MODELS + 10):
        calibration.wants_sample(f"model-{i}")
    assert not calibration.wants_sample("yet another"), "at most MODELS models are tracked"
