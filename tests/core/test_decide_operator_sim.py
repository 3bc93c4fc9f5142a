"""A small simulation of three nodes running :func:`decide` with an atomic claim table, while an operator moves
the group and puts nodes in and out of standby at random (hypothesis draws the schedule). After every step: a
node that has the group at a start level holds its claim, so it never runs on two nodes, and only the preferred
node (when it may run the group) or, without one, a node not in standby, ever claims it. After the orders stop
changing and every node has had its cycles: the group runs on the preferred node when that node may run it,
never on a node in standby, and somewhere whenever some node may run it."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from omha_core.cltab import parse_cltab
from omha_core.decide import Instance, NodeView, View, decide

CLTAB = parse_cltab("web:check:test:test:true\nweb:srv:run:respawn:sleep 100\n")
NODES = ("n1", "n2", "n3")


@dataclass
class Sim:
    local: dict[str, Instance] = field(default_factory=lambda: {n: Instance(None, "CONFIGURED") for n in NODES})
    claims: dict[str, str] = field(default_factory=dict)
    prefer: dict[str, str] = field(default_factory=dict)
    standby: set[str] = field(default_factory=set)

    def cycle(self, me: str) -> None:
        nodes = {n: NodeView(n, groups={"web": self.local[n]}) for n in NODES}
        view = View(
            me,
            nodes,
            {"web": "run"},
            CLTAB,
            dict(self.claims),
            waiting={"web": 100.0},
            prefer=dict(self.prefer),
            standby=frozenset(self.standby),
        )
        refused = False
        for act in decide(view).actions:
            if act.kind == "claim":
                # with a preferred node that may run it, nobody else ever takes the group (no start-stop churn)
                target = self.prefer.get("web")
                assert target in (None, me) or target in self.standby, (me, act, self)
                assert me not in self.standby, (me, act, self)
                holder = self.claims.setdefault(act.group, me)  # create-if-absent
                refused = holder != me
            elif act.kind == "release" and self.claims.get(act.group) == me:
                del self.claims[act.group]
            elif act.kind == "tell" and not refused and act.level is not None:
                self.local[me] = Instance(act.level, "STOPPING" if act.level == "stop" else "STARTING")

    def settle(self, me: str) -> None:
        inst = self.local[me]
        if inst.state in ("STARTING", "STOPPING"):
            self.local[me] = Instance(inst.level, "PASSED" if inst.level == "test" else "DONE")

    def check_one_claim(self) -> None:
        for n, inst in self.local.items():
            if inst.active and inst.level not in (None, "stop"):
                assert self.claims.get("web") == n, (n, inst, self.claims)

    def running(self) -> list[str]:
        return [n for n, i in self.local.items() if i.level == "run" and i.state == "DONE"]


steps = st.lists(
    st.one_of(
        st.tuples(st.just("cycle"), st.sampled_from(NODES)),
        st.tuples(st.just("settle"), st.sampled_from(NODES)),
        st.tuples(st.just("move"), st.sampled_from((*NODES, None))),
        st.tuples(st.just("standby"), st.sampled_from(NODES)),
        st.tuples(st.just("unstandby"), st.sampled_from(NODES)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_orders_never_put_the_group_on_two_nodes_and_are_obeyed_once_settled(schedule: list[tuple[str, str]]) -> None:
    sim = Sim()
    for kind, arg in schedule:
        if kind == "cycle":
            sim.cycle(arg)
        elif kind == "settle":
            sim.settle(arg)
        elif kind == "move":
            sim.prefer = {"web": arg} if arg else {}
        elif kind == "standby":
            sim.standby.add(arg)
        else:
            sim.standby.discard(arg)
        sim.check_one_claim()
    for _ in range(12):  # orders stand still: every node cycles and settles in turn
        for n in NODES:
            sim.cycle(n)
            sim.check_one_claim()
            sim.settle(n)
    running = sim.running()
    fit = [n for n in NODES if n not in sim.standby]
    assert len(running) == (1 if fit else 0), (running, sim)
    assert not set(running) & sim.standby
    target = sim.prefer.get("web")
    if target in fit:
        assert running == [target], sim
