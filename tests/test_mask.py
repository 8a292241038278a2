"""Masking the token in a stream, whatever the chunking."""

from __future__ import annotations

import itertools
import os
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from azexec.parts.mask import Masker, pump

SECRET = b"eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"


def masked_in_pieces(data: bytes, cuts: list[int]) -> bytes:
    masker = Masker(SECRET)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    out = b"".join(masker.feed(data[a:b]) for a, b in itertools.pairwise(points))
    return out + masker.flush()


def test_whole_and_split_tokens_are_masked() -> None:
    """A token in one piece, or split at every possible point, becomes ***."""
    data = b"token=" + SECRET + b"\n"
    for cut in range(len(data) + 1):
        assert masked_in_pieces(data, [cut]) == b"token=***\n"


def test_only_a_possible_token_start_is_held_back() -> None:
    """A complete line is passed on at once; only an end that may begin the token waits."""
    masker = Masker(SECRET)
    assert masker.feed(b"line one\n") == b"line one\n"
    assert masker.feed(b"partial eyJhb") == b"partial "
    assert masker.feed(b"X\n") == b"eyJhbX\n"
    assert masker.feed(b"ends with e") == b"ends with "
    assert masker.flush() == b"e"


# Correctness, not speed: a loaded CI machine must not turn into a deadline failure.
@settings(deadline=None)
@given(
    prefix=st.binary(max_size=200),
    middle=st.binary(max_size=200),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=12),
    copies=st.integers(min_value=0, max_value=3),
)
def test_any_chunking_masks_like_replace(prefix: bytes, middle: bytes, cuts: list[int], copies: int) -> None:
    """However the stream is cut, the output equals the whole stream with every token replaced."""
    data = prefix + (SECRET + middle) * copies + SECRET[:10]
    assert masked_in_pieces(data, cuts) == data.replace(SECRET, b"***")


#: A hundred tokens as one issuer hands them out over a long job: the same header, then each its own.
ISSUER = b"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsIng1dCI6Ik1uQ19WWmNBVGZNNXBP"
TOKENS = [ISSUER + b"." + f"eyJuIjo{n:03d}fQ".encode() + b".c2ln" + bytes([65 + n % 26]) * 3 for n in range(100)]
#: The identity server's own secrets: random, each with a beginning of its own.
RANDOM = [b"Zq3x7Kp9Lm2Vb8Nc4Ht6Yw1Ds5Fg0Jr", b"-_a9B8c7D6e5F4g3H2i1J0kLmNoPqRsT"]


def masked_with(secrets: list[bytes], data: bytes, cuts: list[int]) -> bytes:
    masker = Masker(*secrets)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return b"".join(masker.feed(data[a:b]) for a, b in itertools.pairwise(points)) + masker.flush()


def replaced(secrets: list[bytes], data: bytes) -> bytes:
    for secret in sorted(secrets, key=len, reverse=True):
        data = data.replace(secret, b"***")
    return data


@settings(deadline=None)
@given(
    count=st.integers(min_value=1, max_value=100),
    picks=st.lists(st.integers(min_value=0, max_value=101), max_size=6),
    filler=st.binary(max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_many_secrets_mask_like_replace(count: int, picks: list[int], filler: bytes, cuts: list[int]) -> None:
    """With up to 100 tokens of one issuer and the server's random secrets, any of them, split across any reads,
    comes out masked; an unrelated token of the same issuer, and the end of a stream, pass unchanged."""
    secrets = [*TOKENS[:count], *RANDOM]
    pool = [*secrets, TOKENS[-1], ISSUER + b".eyJvdGhlciI6MX0"]  # the last two: not (all) handed out
    data = filler.join(pool[pick % len(pool)] for pick in picks) + filler + ISSUER[:20]
    assert masked_with(secrets, data, cuts) == replaced(secrets, data)


def test_with_many_secrets_only_a_possible_beginning_is_held_back() -> None:
    """A hundred secrets hold back no more than one: a complete line at once, a shared beginning until it parts."""
    masker = Masker(*TOKENS, *RANDOM)
    assert masker.feed(b"line one\n") == b"line one\n"
    assert masker.feed(b"partial " + ISSUER[:30]) == b"partial "
    assert masker.feed(ISSUER[30:] + b".X\n") == ISSUER + b".X\n"
    assert masker.feed(b"ends with Zq3") == b"ends with "
    assert masker.flush() == b"Zq3"


def test_pump_copies_a_large_stream_exactly() -> None:
    """Many MiB with tokens throughout come out byte-exact, tokens masked."""
    block = os.urandom(100_000).replace(b"e", b"E") + SECRET
    data = block * 40
    source_r, source_w = os.pipe()
    target_r, target_w = os.pipe()

    def feed() -> None:
        with os.fdopen(source_w, "wb") as f:
            f.write(data)

    received: list[bytes] = []

    def drain() -> None:
        with os.fdopen(target_r, "rb") as f:
            received.append(f.read())

    threads = [threading.Thread(target=feed), threading.Thread(target=drain)]
    for t in threads:
        t.start()
    exited_r, exited_w = os.pipe()
    pump(source_r, target_w, lambda: (SECRET,), exited_r)
    os.close(target_w)
    os.close(exited_r)
    os.close(exited_w)
    for t in threads:
        t.join()
    assert received[0] == data.replace(SECRET, b"***")


def test_pump_passes_on_what_command_left_in_the_pipe_then_stops() -> None:
    """After COMMAND exits, all it wrote is passed on; a writer still holding the pipe is cut off."""
    source_r, source_w = os.pipe()
    target_r, target_w = os.pipe()
    exited_r, exited_w = os.pipe()
    os.write(source_w, b"x" * 60_000 + SECRET)  # COMMAND's output, waiting in the pipe
    os.close(exited_w)  # COMMAND has exited; source_w stays open, as a background job would hold it
    received = bytearray()

    def drain() -> None:
        while chunk := os.read(target_r, 4096):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        pump(source_r, target_w, lambda: (SECRET,), exited_r)
    finally:
        os.close(target_w)
        reader.join()
        os.close(source_w)
        os.close(exited_r)
        os.close(target_r)
    assert bytes(received) == b"x" * 60_000 + b"***"
