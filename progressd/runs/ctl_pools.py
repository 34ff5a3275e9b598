"""``progressctl`` commands for resources: pools, leases, drain.

Like ``runs/ctl.py``, this module exports ``SPECS`` that ``ctl.py`` turns into commands.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TextIO
from urllib.parse import quote, urlencode

from progressd.client import ControlClient
from progressd.runs.ctl import Spec
from progressd.runs.messages import DrainReply, DrainRequest, LeaseList, PoolList
from progressd.runs.table import print_json, print_table

__all__ = ["SPECS"]


async def _pools(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    reply = await client.get("/v1/pools", PoolList)
    if args.json:
        print_json(reply, out)
        return 0
    if not reply.pools:
        out.write("no pools (pools come from the resources of live runs)\n")
        return 0
    header = (
        "POOL",
        "RUN",
        "MEMBER",
        "STATE",
        "HOLDERS",
        "CAPACITY",
        "CHECK",
        "CLASS",
        "ON-FAILURE",
    )
    rows = [
        (
            pool.name,
            pool.run or "(shared)",
            member.address,
            member.state,
            str(member.holders),
            "-" if member.capacity is None else str(member.capacity),
            pool.check or "-",
            member.inherited_class if pool.check else "-",
            pool.on_failure,
        )
        for pool in reply.pools
        for member in pool.members
    ]
    print_table(header, rows, out, right=frozenset({4, 5}))
    return 0


def _leases_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", nargs="?", help="only the leases of this run")


async def _leases(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    query = f"?{urlencode({'run': args.run})}" if args.run else ""
    reply = await client.get(f"/v1/leases{query}", LeaseList)
    if args.json:
        print_json(reply, out)
        return 0
    if not reply.leases:
        out.write("no leases\n")
        return 0
    header = ("LEASE", "RUN", "POOL", "MEMBER", "SCENARIO", "USERS", "PROGRESS", "MILESTONE")
    rows = [
        (
            str(lease.id),
            lease.run,
            lease.pool,
            lease.member,
            lease.scenario,
            _users(lease.rows),
            f"{lease.progress:.1%}",
            lease.milestone or "-",
        )
        for lease in reply.leases
    ]
    print_table(header, rows, out, right=frozenset({0, 6}))
    return 0


def _users(rows: Sequence[int]) -> str:
    if len(rows) <= 3:
        return ",".join(str(row) for row in rows)
    return f"{rows[0]}..{rows[-1]} ({len(rows)})"


def _drain_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pool", metavar="POOL")
    parser.add_argument("member", metavar="MEMBER", help="host:port")
    parser.add_argument("--run", metavar="RUN", help="the run whose pool it is, when ambiguous")
    parser.add_argument("--undo", action="store_true", help="take the member back into service")


async def _drain(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    path = f"/v1/pools/{quote(args.pool, safe='')}/members/{quote(args.member, safe='')}/drain"
    if args.run:
        path += f"?{urlencode({'run': args.run})}"
    body = DrainRequest(draining=not args.undo)
    reply = await client.request("POST", path, reply=DrainReply, body=body)
    if args.json:
        print_json(reply, out)
        return 0
    member = reply.member
    out.write(
        f"{reply.pool}/{member.address} ({'run ' + reply.run if reply.run else 'shared'}): "
        f"{member.state}, {member.holders} holders\n"
    )
    return 0


SPECS: Sequence[Spec] = (
    ("pools", "pools and their members' health", _pools, lambda parser: None),
    ("leases", "leases held, with their holders' progress", _leases, _leases_args),
    ("drain", "stop granting leases on a pool member", _drain, _drain_args),
)
