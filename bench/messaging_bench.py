#!/usr/bin/env python3
"""Email services benchmark: 50k contacts pushed to each service's local server.

    python bench/messaging_bench.py                     # 50k contacts -> bench/results/messaging.json
    python bench/messaging_bench.py --contacts 5000 --latency 0.02 --output /tmp/m.json

For Mailchimp, Brevo, SendPulse and Unisender, on the protocol servers of the tests
(``tests/fakes/``), the connector writes N subscribed contacts in the chunks the core
hands it (``write_batch_size``), as ``hub sync`` does:

1. *clean*: every request answered after a simulated network latency (``--latency``,
   default 50 ms); reported: API calls by endpoint against the fewest possible
   (N / the API's largest batch), wall time, requests refused for rate limits;
2. *faults*: the same push with faults injected every few requests (429 with and
   without Retry-After, 500 before and after the request took effect, answers slower
   than the client's timeout, dropped connections) and 1% of the addresses refused by
   the provider; what the connector returns as retriable is sent again, as the next
   sync would, until nothing is pending. Reported: rounds, calls, and the number of
   duplicate sends: an address applied again after the provider had acknowledged it
   (must be 0). Re-applying an idempotent upsert whose answer was lost is counted
   apart (``reapplied_after_lost_answer``): the client cannot know it took effect.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from hub_plugins.brevo import BrevoConnector, BrevoOptions
from hub_plugins.mailchimp import MailchimpConnector, MailchimpOptions
from hub_plugins.sendpulse import SendPulseConnector, SendPulseOptions
from hub_plugins.unisender import UnisenderConnector, UnisenderOptions

from hub.connector import ConnectorContext
from hub.model import OutboundItem
from tests.fakes.brevo import FakeBrevo
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.sendpulse import FakeSendPulse
from tests.fakes.unisender import FakeUnisender

#: name, the API's largest write batch, the write endpoints, how to build the pair
SERVICES = {
    "mailchimp": (500, ("batch",)),
    "brevo": (5000, ("import",)),
    "sendpulse": (None, ("emails.add",)),  # no documented limit: one request per chunk at least
    "unisender": (500, ("importContacts",)),
}


def build(name: str, run: str) -> tuple[Any, Any]:
    context = ConnectorContext(name, ROOT, logging.getLogger(f"bench.{name}"))
    common = {"backoff_seconds": 0.05, "max_backoff_seconds": 0.5, "timeout_seconds": 2.0}
    if name == "mailchimp":
        fake = FakeMailchimp(f"{run}0123456789abcdef0123456789ab-us21").start()
        return fake, MailchimpConnector(MailchimpOptions(api_key=fake.api_key, list_id=fake.list_id,
                                                         endpoint=fake.url + "/3.0", **common), context)
    if name == "brevo":
        fake = FakeBrevo(f"xkeysib-{run}-bench").start()
        return fake, BrevoConnector(BrevoOptions(api_key=fake.api_key, list_id=2, endpoint=fake.url + "/v3",
                                                 import_poll_seconds=0.05, requests_per_second=50, **common),
                                    context)
    if name == "sendpulse":
        fake = FakeSendPulse(client_id=f"bench-{run}").start()
        return fake, SendPulseConnector(SendPulseOptions(client_id=fake.client_id, client_secret=fake.client_secret,
                                                         address_book_id=fake.book_id, endpoint=fake.url, **common),
                                        context)
    fake = FakeUnisender(f"{run}-bench-key-0123456789").start()
    return fake, UnisenderConnector(UnisenderOptions(api_key=fake.api_key, list_id=fake.list_id, endpoint=fake.url,
                                                     requests_per_second=50, **common), context)


def items(count: int) -> list[OutboundItem]:
    return [OutboundItem(i, "upsert", {"email": f"client{i}@example.com", "email_address": f"client{i}@example.com",
                                       "Name": f"Клиент {i}"}, consent="subscribed")
            for i in range(1, count + 1)]


def push(connector: Any, pending: list[OutboundItem]) -> tuple[int, Counter]:
    """Write in the core's chunks until nothing is retriable; return rounds and outcomes."""
    rounds = 0
    outcomes: Counter = Counter()
    size = connector.write_batch_size or len(pending)
    while pending and rounds < 20:
        rounds += 1
        retry: list[OutboundItem] = []
        by_id = {item.contact_id: item for item in pending}
        for start in range(0, len(pending), size):
            for result in connector.write(pending[start : start + size]):
                if result.status == "retriable":
                    retry.append(by_id[result.contact_id])
                else:
                    outcomes[result.status] += 1
        pending = retry
    outcomes["still_pending"] = len(pending)
    return rounds, outcomes


def applied(fake: Any, endpoints: tuple[str, ...]) -> tuple[Counter, Counter]:
    every, lost = Counter(), Counter()
    for endpoint, request, answer_lost in fake.applied:
        if endpoint not in endpoints:
            continue
        if endpoint == "importContacts":
            form = request.form()
            column = next(int(k[12:-1]) for k, v in form.items() if k.startswith("field_names[") and v[0] == "email")
            emails = [v[0] for k, v in form.items() if k.startswith("data[") and k.endswith(f"][{column}]")]
        else:
            body = request.json() or {}
            rows = body.get("members") or body.get("jsonBody") or body.get("emails") or []
            emails = [row.get("email_address") or row.get("email") for row in rows]
        every.update(e.lower() for e in emails if e)
        if answer_lost:
            lost.update(e.lower() for e in emails if e)
    return every, lost


def inject(fake: Any, endpoint: str, count: int, rng: random.Random) -> None:
    for _ in range(count):
        kind = rng.choice(["429", "429-retry-after", "500", "500-after", "timeout", "drop"])
        if kind == "429":
            fake.fail(endpoint, 429)
        elif kind == "429-retry-after":
            fake.fail(endpoint, 429, retry_after="0.1")
        elif kind == "500":
            fake.fail(endpoint, 500)
        elif kind == "500-after":
            fake.fail(endpoint, 500, after_apply=True)
        elif kind == "timeout":
            fake.fail(endpoint, delay=2.5)
        else:
            fake.fail(endpoint, 500, body="drop")


def measure(name: str, count: int, latency: float, faults: bool, seed: int) -> dict[str, Any]:
    largest, endpoints = SERVICES[name]
    fake, connector = build(name, "f" if faults else "c")
    fake.latency = latency
    if name == "sendpulse":
        fake.requests_per_second = 10  # SendPulse's limit, enforced
    rng = random.Random(seed)
    batch = items(count)
    if faults:
        fake.refused.update(item.values["email"] for item in rng.sample(batch, max(1, count // 100)))
        inject(fake, endpoints[0], max(3, count // 5000), rng)
    started = time.perf_counter()
    try:
        rounds, outcomes = push(connector, batch)
    finally:
        elapsed = time.perf_counter() - started
        connector.close()
        fake.stop()
    every, lost = applied(fake, endpoints)
    accepted_again = sum(max(0, every[e] - 1 - lost[e]) for e in every)
    minimum = -(-count // largest) if largest else -(-count // connector.write_batch_size)
    writes = sum(fake.calls[e] for e in endpoints)
    return {
        "contacts": count, "seconds": round(elapsed, 2), "rounds": rounds, "outcomes": dict(outcomes),
        "calls": dict(sorted(fake.calls.items())), "api_calls": sum(fake.calls.values()),
        "write_calls": writes, "minimum_write_calls": minimum,
        "minimum_note": f"{count} / {largest} per request" if largest else
        f"no documented batch limit; {count} / {connector.write_batch_size} (hub's batch)",
        "rate_limited_by_server": fake.rate_limited, "duplicate_sends": accepted_again,
        "reapplied_after_lost_answer": sum(lost.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (simulated network)")
    parser.add_argument("--services", default=",".join(SERVICES))
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "messaging.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "contacts": args.contacts, "latency_seconds": args.latency, "services": {},
    }
    for name in args.services.split(","):
        clean = measure(name, args.contacts, args.latency, faults=False, seed=args.seed)
        faulty = measure(name, args.contacts, args.latency, faults=True, seed=args.seed)
        results["services"][name] = {"clean": clean, "faults": faulty}
        print(f"{name:10} clean: {clean['write_calls']} write calls (minimum {clean['minimum_write_calls']}), "
              f"{clean['api_calls']} calls in all, {clean['seconds']} s; faults: {faulty['rounds']} rounds, "
              f"{faulty['api_calls']} calls, rejected {faulty['outcomes'].get('rejected', 0)}, "
              f"duplicate sends {faulty['duplicate_sends']}, re-applied after a lost answer "
              f"{faulty['reapplied_after_lost_answer']}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
