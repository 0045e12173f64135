"""The redactor's rules: short values only as whole words, one trie for many secrets,
values scoped to a config load (or a daemon's hold), whole answers scanned once."""

from __future__ import annotations

import gc
import re
import sys
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from server.core import redact
from server.core.redact import MASK, Redactor
from server.core.redact_escape import escaped_forms
from server.core.redact_match import MIN_SUBSTRING_LENGTH, Matcher
from server.validation import parse_config

MAIL = """
channels:
  mail: {{type: email, host: 127.0.0.1, port: 25, security: none, from: lb@example.org,
         to: [ops@example.org], password: "{password}"}}
"""


def test_a_short_secret_is_masked_as_a_whole_word_and_not_inside_other_words() -> None:
    redactor = Redactor()
    redactor.learn(["none"])
    assert redactor.text("password none, (none) none.") == f"password {MASK}, ({MASK}) {MASK}."
    plain = "pollers: nonexistent, xnone, none1"
    assert redactor.text(plain) == plain
    # an escape before it is a separator, not a letter: the repr of "a\nnone", "%0Anone"
    assert redactor.text(repr("a\nnone")) == f"'a\\n{MASK}'"
    assert redactor.text("q=a%0Anone") == f"q=a%0A{MASK}"
    assert redactor.text("pw=\\u00e9none") == f"pw=\\u00e9{MASK}"


def test_a_secret_of_eight_characters_or_more_is_masked_inside_words_too() -> None:
    redactor = Redactor()
    redactor.learn(["x" * (MIN_SUBSTRING_LENGTH - 1) + "y", "k3y-7"])
    assert redactor.text("Bearerxxxxxxxyz") == f"Bearer{MASK}z"
    assert redactor.text("ak3y-7b k3y-7") == f"ak3y-7b {MASK}"


def test_overlapping_secrets_are_masked_as_one_span_leaving_no_tail() -> None:
    redactor = Redactor()
    redactor.learn(["abc1", "c1-secret-tail"])
    assert redactor.text("got abc1-secret-tail!") == f"got {MASK}!"


def test_a_config_load_forgets_the_secrets_of_the_previous_one() -> None:
    parse_config(MAIL.format(password="none"), "a.yaml", {})
    assert redact.redact("security: none") == f"security: {MASK}"  # a real secret, as a word
    parse_config(MAIL.format(password="hunter2-hunter2"), "b.yaml", {})
    assert redact.redact("security: none") == "security: none"  # the next config: not masked
    assert redact.redact("pw hunter2-hunter2") == f"pw {MASK}"


def test_a_hold_keeps_a_daemons_secrets_across_later_loads_until_released() -> None:
    parse_config(MAIL.format(password="daemon-one-secret"), "a.yaml", {})
    held = redact.hold()
    parse_config(MAIL.format(password="other-config-secret"), "b.yaml", {})
    held.keep()  # what a reload does
    assert redact.redact("daemon-one-secret other-config-secret") == f"{MASK} {MASK}"
    held.release()
    assert redact.redact("daemon-one-secret other-config-secret") == f"daemon-one-secret {MASK}"
    parse_config(MAIL.format(password="again-one-secret"), "a.yaml", {})
    redact.hold()  # dropped at once: its owner is gone, so are its values once loaded anew
    gc.collect()
    redact.reset()
    assert redact.redact("again-one-secret") == "again-one-secret"


def test_the_values_masked_come_with_the_generation_they_were_loaded_at() -> None:
    # a reader keys what it sends a worker by generation: a reload between reading the
    # two must not pair one load's values with another's generation
    redactor = Redactor()
    sets = [["first-load-secret"], ["second-load-secret"]]
    loads = 2000
    done = threading.Event()

    def reload() -> None:
        for n in range(loads):
            redactor.load(sets[n % 2])
        done.set()

    seen: dict[int, frozenset[str]] = {}
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over often: a torn read shows within the run
    try:
        writer = threading.Thread(target=reload)
        writer.start()
        while not done.is_set():
            generation, values = redactor.masked()
            assert seen.setdefault(generation, values) == values
        writer.join()
    finally:
        sys.setswitchinterval(old)
    assert len(seen) > 1
    generation, values = redactor.masked()
    assert "second-load-secret" in values and "first-load-secret" not in values


def test_a_thousand_secrets_are_each_masked_in_every_spelling() -> None:
    redactor = Redactor()
    values = [f'tok{i:04d}-{i * 7919 % 10007:05d}"/é' for i in range(1000)]
    redactor.learn(values)
    for value in values[::97]:
        for form in escaped_forms(value):
            assert redactor.text(f"x {form} y") == f"x {MASK} y", form


def test_a_whole_answer_is_returned_as_it_is_when_nothing_is_masked() -> None:
    redactor = Redactor()
    redactor.learn(["svc-secret-999"])
    answer = {"services": [{"id": f"svc-{i}", "message": "ok", "n": i} for i in range(1000)]}
    assert redactor.value(answer) is answer
    answer["services"][500]["message"] = "failed: svc-secret-999"
    masked = redactor.value(answer)
    assert masked["services"][500]["message"] == f"failed: {MASK}"
    assert masked["services"][499] == answer["services"][499]
    assert answer["services"][500]["message"] == "failed: svc-secret-999"  # input unchanged


# not after a letter or digit, unless an escape (\\n, \\x00, \\u00e9, %0A) ends in it
_BOUND_BEFORE = (
    r"(?:(?<![^\W_])|(?<=\\[abfnrtv0])|(?<=\\x[0-9A-Fa-f]{2})|(?<=\\u[0-9A-Fa-f]{4})"
    r"|(?<=\\U[0-9A-Fa-f]{8})|(?<=%[0-9A-Fa-f]{2}))"
)


def reference(text: str, values: list[str]) -> str:
    """The rule written the slow, obvious way: every occurrence of every spelling, one at
    a time, the union of what they cover masked."""
    covered = [False] * len(text)
    for value in values:
        if len(value) < redact.MIN_SECRET_LENGTH:
            continue
        for form in escaped_forms(value):
            pattern = re.escape(form)
            if len(value) < MIN_SUBSTRING_LENGTH:
                pattern = _BOUND_BEFORE + pattern + r"(?![^\W_])"
            for match in re.finditer(f"(?=({pattern}))", text):
                for i in range(*match.span(1)):
                    covered[i] = True
    out, i = [], 0
    while i < len(text):
        if covered[i]:
            out.append(MASK)
            while i < len(text) and covered[i]:
                i += 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.text(alphabet='ab1-\n"é', min_size=4, max_size=10), max_size=5),
    pieces=st.lists(st.text(alphabet='ab1- \n"é%0A\\', max_size=6), max_size=8),
)
def test_the_trie_masks_exactly_what_each_spelling_searched_alone_would(
    values: list[str], pieces: list[str]
) -> None:
    redactor = Redactor()
    redactor.learn(values)
    spelled = [f for v in values for f in sorted(escaped_forms(v))[:3]]
    text = "".join(p + (spelled[i % len(spelled)] if spelled else "") for i, p in enumerate(pieces))
    expected = reference(text, values)
    masked = redactor.text(text)
    # the URL rules run after the values and only add masks; none apply to this alphabet
    assert masked == expected


def test_values_nested_deeper_than_the_recursion_limit_are_still_masked() -> None:
    # each value a prefix of the next: a trie as deep as the longest value
    found = Matcher({"s" * n for n in range(8, 1500)}, {"word"})
    assert found.mask("x " + "s" * 40 + " word words", MASK) == f"x {MASK} {MASK} words"


def test_text_cut_for_a_message_is_masked_before_the_cut_so_no_head_shows() -> None:
    from server.core.text import clip, shorten

    held = redact.hold()
    redact.learn(["CutThroughSecret42"])
    held.keep()
    try:
        text = "x" * 30 + "CutThroughSecret42 tail"
        assert clip(text, 36) == "x" * 30 + "<secre"
        assert "CutThr" not in shorten(text, 36) and shorten(text, 80).endswith("<secret> tail")
    finally:
        held.release()
