"""Redaction: the cost of scrubbing known credentials from what the model and the audit see.

The redactor runs on every tool result (its value, then its rendered text), every refusal
reason and every audit record, so its cost on text that holds no credential is the figure
that matters; a text that holds one is measured too. Workloads, with three registered
credentials of realistic length:

- ``text_2k_us``: a 2 KB JSON tool result without a credential (``redact_text``);
- ``text_64k_us``: a 64 KB text, the most a tool result may show the model;
- ``value_20_us``: a 20-field dict as a tool returns it (``redact``);
- ``hit_2k_us``: a 2 KB text with one credential in it;
- ``register_us``: registering one more credential (done once per credential and process).

Run: python benchmarks/redaction.py [--repeat N]. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from charter.identity.secrets import Redactor

SECRETS = ("sk_live_pay_7Qx9Zr2Lm4Nv8Kw3", "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
           "xoxb-2144-9911-Zq8pL0sWm3")  # fmt: skip


def _ticket(i: int) -> dict[str, Any]:
    return {"id": f"T-{1000 + i}", "customer": f"customer{i}@example.com", "status": "open",
            "subject": "Refund for order", "body": "I was charged twice for my order " * 3,
            "amount": "350.00", "tags": ["billing", "refund"]}  # fmt: skip


def _median_us(work: Callable[[], object], repeat: int) -> float:
    loops = 1
    while True:  # enough loops that one sample takes about a millisecond
        start = time.perf_counter()
        for _ in range(loops):
            work()
        if time.perf_counter() - start > 1e-3:
            break
        loops *= 2
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(loops):
            work()
        samples.append((time.perf_counter() - start) / loops * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    repeat = parser.parse_args().repeat
    redactor = Redactor()
    for secret in SECRETS:
        redactor.register(secret)
    text_2k = json.dumps([_ticket(i) for i in range(6)])[:2048]
    text_64k = (text_2k * 32)[:65536]
    value = {f"field_{i}": f"value number {i} of the tool's result" for i in range(20)}
    hit = text_2k[:1000] + SECRETS[0] + text_2k[1000:]
    assert SECRETS[0] not in redactor.redact_text(hit)

    def register() -> None:
        fresh = Redactor()
        fresh.register(SECRETS[0])

    figures = {
        "text_2k_us": _median_us(lambda: redactor.redact_text(text_2k), repeat),
        "text_64k_us": _median_us(lambda: redactor.redact_text(text_64k), repeat),
        "value_20_us": _median_us(lambda: redactor.redact(value), repeat),
        "hit_2k_us": _median_us(lambda: redactor.redact_text(hit), repeat),
        "register_us": _median_us(register, max(5, repeat // 5)),
    }
    print(json.dumps({name: round(us, 2) for name, us in figures.items()}))


if __name__ == "__main__":
    main()
