"""`ls --tree` and `show` display task trees and dependencies."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core import Client, Engine, Submission
from tests.cli.conftest import ok


def _make_tree(db: Path) -> dict[str, int]:
    async def build() -> dict[str, int]:
        eng = await Engine.open(db)
        await eng.stop()  # create the database; a client submits the tree
        async with Client.open(db) as c:
            parent = (await c.submit("demo.sleep", {"seconds": 1}, label="album")).id
            kids = [
                (await c.submit("demo.sleep", {"seconds": 1}, parent=parent, label=f"photo {i}")).id
                for i in range(2)
            ]
            ids = await c.submit_graph({
                "fetch": Submission("demo.sleep", {"seconds": 1}, label="fetch"),
                "merge": Submission("demo.sleep", {"seconds": 1}, label="merge", depends_on=("fetch",)),
            })  # fmt: skip
        return {"parent": parent, "kid0": kids[0], "kid1": kids[1], **ids}

    return asyncio.run(build())


def test_given_a_tree_then_ls_tree_indents_children_under_their_parent(db: Path) -> None:
    ids = _make_tree(db)
    names = [line.split()[0] for line in ok(db, "ls", "--tree").out.splitlines()[1:]]
    assert names[:3] == [str(ids["parent"]), str(ids["kid0"]), str(ids["kid1"])]
    out = ok(db, "ls", "--tree").out
    assert "└ photo 0" in out and "└ photo 1" in out


def test_given_a_parent_then_show_prints_its_tree_and_dependencies(db: Path) -> None:
    ids = _make_tree(db)
    out = ok(db, "show", str(ids["parent"])).out
    assert "tree:" in out and f"#{ids['kid0']} photo 0" in out
    merge = ok(db, "show", str(ids["merge"])).out
    assert f"depends on: #{ids['fetch']} (pending)" in merge
    data = ok(db, "show", str(ids["parent"]), "--json").json
    assert data["children"] == [ids["kid0"], ids["kid1"]]
    assert ok(db, "show", str(ids["fetch"]), "--json").json["dependents"] == [ids["merge"]]
    assert ok(db, "show", str(ids["merge"]), "--json").json["state"] == "blocked"
