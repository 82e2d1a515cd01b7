"""Tenant isolation, as a property: 1,000 random searches, gets, lists and deletes across two tenants leak nothing.

Each tenant uploads two small generated scans (OCRed once) and three copies of each (the same bytes: the stored
result is reused, nothing is OCRed again). Then Hypothesis draws 50 runs of 20 operations, each made by one tenant
and aimed at either tenant's job ids or at random ones, with words of both tenants' pages and injection strings
as queries. Every response is checked against a model of what the caller owns: no id, word or count of the other
tenant; another tenant's id is 404 like a missing one; a search finds exactly the caller's pages that have every
word; and a search gives the same answer for the same state of the caller's documents, whatever the other tenant
holds at the time (its documents must not move the ranking either).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.api_stack import ApiStack, job_ids_in
from tests.pages import make_page, page_to_png
from textlayer.index.base import query_terms, split_terms, term_key

pytestmark = [pytest.mark.redis, pytest.mark.sandbox, pytest.mark.onnx, pytest.mark.slow]

TENANTS = ("iso-a", "iso-b")
KINDS = {"iso-a": ("receipt", "table"), "iso-b": ("two_column", "fonts")}
COPIES = 3
DPI = 80  # small pages OCR fast; the test needs words, not accuracy
INJECTIONS = ('x") OR ("y', "tenant:iso-b", "iso-a OR iso-b", 'NEAR("total" "the")', "*", "' OR 1=1 --", '"')


@dataclass
class Doc:
    tenant: str
    text: str
    deletable: bool
    live: bool = True

    @property
    def keys(self) -> set[str]:
        return {term_key(t) for t in split_terms(self.text)}


@dataclass
class World:
    clients: dict
    docs: dict[str, Doc]
    vocabulary: list[str]
    foreign_words: dict[str, set[str]]
    answers: dict = field(default_factory=dict)
    checked: dict = field(default_factory=lambda: {"ops": 0, "searches": 0, "repeats": 0, "deleted": 0})

    def own_live(self, tenant: str) -> set[str]:
        return {i for i, d in self.docs.items() if d.tenant == tenant and d.live}

    def foreign_ids(self, tenant: str) -> set[str]:
        return {i for i, d in self.docs.items() if d.tenant != tenant}


@pytest.fixture(scope="module")
def world(stack: ApiStack):
    clients = {tenant: stack.client(stack.token(tenant)) for tenant in TENANTS}
    docs: dict[str, Doc] = {}
    anchors: dict[str, tuple[str, bytes]] = {}
    for tenant, kinds in KINDS.items():
        for kind in kinds:
            scan = page_to_png(make_page(kind, dpi=DPI))
            job_id = (
                clients[tenant].post("/v1/documents", params={"filename": f"{kind}.png"}, content=scan).json()["id"]
            )
            anchors[job_id] = (tenant, scan)
    for tenant in TENANTS:
        stack.wait_jobs(clients[tenant], [i for i, (t, _) in anchors.items() if t == tenant])
    copies: dict[str, tuple[str, str]] = {}
    for anchor, (tenant, scan) in anchors.items():
        for _ in range(COPIES):
            copies[clients[tenant].post("/v1/documents", content=scan).json()["id"]] = (tenant, anchor)
    for tenant in TENANTS:
        finished = stack.wait_jobs(clients[tenant], [i for i, (t, _) in copies.items() if t == tenant])
        assert {job["state"] for job in finished.values()} == {"SUCCEEDED"}, finished
    texts = {}
    for anchor, (tenant, _) in anchors.items():
        texts[anchor] = clients[tenant].get(f"/v1/jobs/{anchor}/text").text
        docs[anchor] = Doc(tenant, texts[anchor], deletable=False)
    for copy, (tenant, anchor) in copies.items():
        docs[copy] = Doc(tenant, texts[anchor], deletable=True)
    words = {t: {term_key(w) for d in docs.values() if d.tenant == t for w in split_terms(d.text)} for t in TENANTS}
    foreign = {t: {w for w in words[o] - words[t] if len(w) >= 4} for t in TENANTS for o in TENANTS if o != t}
    vocabulary = sorted(w for w in words["iso-a"] | words["iso-b"] if re.fullmatch(r"[a-z]{3,}", w))
    assert foreign["iso-a"] and foreign["iso-b"] and len(vocabulary) > 50
    yield World(clients, docs, vocabulary, foreign)
    for client in clients.values():
        client.close()


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _check_no_leak(world: World, tenant: str, response, asked: str | None = None) -> None:
    """No other tenant's id or word in what ``tenant`` got (asked: the id the caller sent, echoed in a 404)."""
    leaked_ids = (job_ids_in(response.text) & world.foreign_ids(tenant)) - {asked}
    assert not leaked_ids, f"{tenant} saw ids of another tenant: {leaked_ids}"
    if response.status_code >= 400:
        # The same answer as for an id that never existed: nothing to tell them apart.
        assert response.json() == {"error": {"code": "job_not_found", "message": f"there is no job {asked!r}"}}
        return
    if response.status_code == 204:
        assert response.content == b""
        return
    is_json = response.headers["content-type"].startswith("application/json")
    content = " ".join(_strings(response.json())) if is_json else response.text
    leaked_words = {term_key(w) for w in split_terms(content)} & world.foreign_words[tenant]
    assert not leaked_words, f"{tenant} saw words only another tenant has: {sorted(leaked_words)[:5]}"


def _search(world: World, tenant: str, query: str) -> None:
    response = world.clients[tenant].get("/v1/search", params={"q": query, "limit": 100})
    assert response.status_code == 200, response.text
    _check_no_leak(world, tenant, response)
    hits = response.json()["hits"]
    found = {hit["job_id"] for hit in hits}
    live = world.own_live(tenant)
    assert found <= live
    keys = {term_key(t) for t in query_terms(query)}
    expected = {i for i in live if keys and keys <= world.docs[i].keys} if keys else set()
    assert found == expected, (query, found ^ expected)
    key = (tenant, frozenset(live), query)
    if key in world.answers:
        world.checked["repeats"] += 1
        assert world.answers[key] == hits, f"the same search of {tenant} answered differently: {query!r}"
    world.answers[key] = hits
    world.checked["searches"] += 1


def _get(world: World, tenant: str, job_id: str, suffix: str) -> None:
    response = world.clients[tenant].get(f"/v1/jobs/{job_id}{suffix}")
    _check_no_leak(world, tenant, response, asked=job_id)
    doc = world.docs.get(job_id)
    if doc is not None and doc.tenant == tenant and doc.live:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 404, (tenant, job_id, response.status_code)
        assert response.json()["error"]["code"] == "job_not_found"


def _delete(world: World, tenant: str, job_id: str) -> None:
    doc = world.docs.get(job_id)
    if doc is not None and doc.tenant == tenant and not doc.deletable:
        return  # the scans themselves stay, so that there is always something to find
    response = world.clients[tenant].delete(f"/v1/documents/{job_id}")
    _check_no_leak(world, tenant, response, asked=job_id)
    if doc is not None and doc.tenant == tenant and doc.live:
        assert response.status_code == 204, response.text
        doc.live = False
        world.checked["deleted"] += 1
    else:
        assert response.status_code == 404, (tenant, job_id, response.text)


def _list(world: World, tenant: str) -> None:
    response = world.clients[tenant].get("/v1/jobs", params={"limit": 100})
    _check_no_leak(world, tenant, response)
    listed = {job["id"] for job in response.json()["jobs"]}
    assert listed == world.own_live(tenant)


def _operations(world: World):
    ids = sorted(world.docs) + ["0" * 32, "f" * 32]
    tenant = st.sampled_from(TENANTS)
    word = st.sampled_from(world.vocabulary)
    query = st.one_of(
        word,
        st.tuples(word, word).map(" ".join),
        st.tuples(word, st.sampled_from(INJECTIONS)).map(" ".join),
        st.sampled_from(INJECTIONS),
    )
    return st.one_of(
        st.tuples(st.just("search"), tenant, query),
        st.tuples(st.just("search"), tenant, query),
        st.tuples(st.just("get"), tenant, st.sampled_from(ids), st.sampled_from(["", "/text", "/json", "/deliveries"])),
        st.tuples(st.just("list"), tenant),
        st.tuples(st.just("delete"), tenant, st.sampled_from(ids)),
    )


def test_a_thousand_random_operations_leak_nothing_across_tenants(world):
    @given(ops=st.lists(_operations(world), min_size=20, max_size=20))
    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(ops) -> None:
        for op in ops:
            kind, tenant, *args = op
            {"search": _search, "get": _get, "delete": _delete, "list": _list}[kind](world, tenant, *args)
            world.checked["ops"] += 1

    run()
    assert world.checked["ops"] == 1000
    assert world.checked["searches"] >= 200 and world.checked["repeats"] >= 20 and world.checked["deleted"] >= 2
