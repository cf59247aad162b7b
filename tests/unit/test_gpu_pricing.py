"""Every way a GPU is sold: MIG slices, time-sliced replicas, AMD, pools, spot, OpenCost; precedence."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from gpu_steward.budgets.costs import opencost_prices, price_table
from gpu_steward.policy import cost as c
from gpu_steward.settings import Settings

A100 = "NVIDIA-A100-SXM4-80GB"
MI300 = "AMD-Instinct-MI300X"
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
TABLE = c.PriceTable("USD", Decimal("2.50"), {A100: Decimal("3.50"), "AMD Instinct MI300X": Decimal("4.20")})


def node(name="n1", **labels):
    return {"metadata": {"name": name, "labels": labels}}


def a100(name="a100", **labels):
    return node(name, **{"nvidia.com/gpu.product": A100, **labels})


def pod(resources, phase="Running", hours=1):
    return {"metadata": {"namespace": "ns", "name": "p", "uid": "u"},
            "spec": {"containers": [{"name": "m", "resources": {"limits": resources}}]},
            "status": {"phase": phase, "startTime": c.format_time(NOW - dt.timedelta(hours=hours))}}


def rate(resources, n, table=TABLE):
    return c.pod_price(table, pod(resources), n).rate


def test_acceptance_mig_slices_and_time_sliced_replicas_on_a100_at_3_50():
    assert rate({"nvidia.com/mig-1g.10gb": "1"}, a100()) == Decimal("0.50")
    assert rate({"nvidia.com/mig-3g.40gb": "1"}, a100()) == Decimal("1.50")
    shared = a100(**{"nvidia.com/gpu.replicas": "4"})
    assert rate({"nvidia.com/gpu": "1"}, shared) == Decimal("0.875")
    assert rate({"nvidia.com/gpu.shared": "1"}, shared) == Decimal("0.875")
    # a shared MIG slice: a quarter of a 1g slice
    assert rate({"nvidia.com/mig-1g.10gb.shared": "1"}, shared) == Decimal("0.125")
    # whole GPUs on a node without replicas are whole
    assert rate({"nvidia.com/gpu": "2"}, a100()) == Decimal("7.00")


def test_cost_and_gpu_hours_are_gpu_equivalents():
    pp = c.pod_price(TABLE, pod({"nvidia.com/mig-1g.10gb": "1"}, hours=7), a100())
    pc = c.pod_cost(pod({"nvidia.com/mig-1g.10gb": "1"}, hours=7), pp.node.price, NOW, price=pp)
    assert pc.cost == Decimal("3.50") and c.q_hours(pc.gpu_hours) == 1 and pc.gpus == 1
    assert pp.units == Decimal(1) / 7 and pp.devices == 1


def test_mig_profile_price_and_slices_per_model():
    table = c.PriceTable("USD", Decimal("2.50"), {A100: Decimal("3.50"), "NVIDIA-A30": Decimal("2")},
                         mig_profile_prices={"2g.20gb": Decimal("0.9")}, mig_slices={"NVIDIA-A30": 4})
    assert rate({"nvidia.com/mig-2g.20gb": "2"}, a100(), table) == Decimal("1.8")
    a30 = node("a30", **{"nvidia.com/gpu.product": "NVIDIA-A30"})
    assert rate({"nvidia.com/mig-1g.6gb": "1"}, a30, table) == Decimal("0.5")


def test_amd_gpu_priced_by_its_model_label():
    mi = node("mi", **{"amd.com/gpu.product-name": "AMD Instinct MI300X"})
    pp = c.pod_price(TABLE, pod({"amd.com/gpu": "2"}), mi)
    assert pp.rate == Decimal("8.40") and pp.node.model == "AMD Instinct MI300X" and pp.node.source == "model"


def test_precedence_node_override_pool_spot_model_opencost_default():
    table = c.PriceTable("USD", Decimal("2.50"), {A100: Decimal("3.50")}, by_pool={"reserved": Decimal("2.00")},
                         spot_by_model={A100: Decimal("1.20")}, opencost={"oc": Decimal("3.10"), "a100": Decimal("9")})
    over = a100(**{"gpusteward.dev/gpu-hour-price": "1.10", "cloud.google.com/gke-nodepool": "reserved"})
    assert (c.node_price(table, over).price, c.node_price(table, over).source) == (Decimal("1.10"), "node")
    pool = a100(**{"cloud.google.com/gke-nodepool": "reserved", "karpenter.sh/capacity-type": "spot"})
    assert (c.node_price(table, pool).price, c.node_price(table, pool).source) == (Decimal("2.00"), "pool")
    spot = a100(**{"eks.amazonaws.com/capacityType": "SPOT"})
    sp = c.node_price(table, spot)
    assert (sp.price, sp.source, sp.category, sp.list_price) == (Decimal("1.20"), "spot", "Dynamic", Decimal("3.50"))
    # a configured model price beats OpenCost for the same node
    assert c.node_price(table, a100()).source == "model"
    oc = c.node_price(table, node("oc", **{"nvidia.com/gpu.product": "NVIDIA-L4"}))
    assert (oc.price, oc.source, oc.category) == (Decimal("3.10"), "opencost", "Standard")
    assert c.node_price(table, node("x")).source == "default" and c.node_price(table, None).price == Decimal("2.50")
    # a malformed override falls through; a reserved node may say Committed
    bad = a100(**{"gpusteward.dev/gpu-hour-price": "cheap", "gpusteward.dev/pricing-category": "Committed"})
    assert (c.node_price(table, bad).source, c.node_price(table, bad).category) == ("model", "Committed")


def test_region_zone_from_topology_labels():
    np_ = c.node_price(TABLE, a100(**{"topology.kubernetes.io/region": "eu-west1",
                                      "topology.kubernetes.io/zone": "eu-west1-b"}))
    assert (np_.region, np_.zone) == ("eu-west1", "eu-west1-b")


def test_settings_reach_the_table_and_round_trip_json():
    s = Settings(gpu_hour_prices={A100: Decimal("3.5")}, pool_gpu_hour_prices={"p": Decimal("1")},
                 spot_gpu_hour_prices={A100: Decimal("1.2")}, mig_profile_prices={"1g.10gb": Decimal("0.6")},
                 mig_slices_per_gpu={"NVIDIA-A30": 4}, gpu_replicas_default=2)
    table = price_table(s)
    assert table.by_pool == {"p": Decimal("1")} and table.default_replicas == 2
    assert c.PriceTable.from_json(table.to_json()) == table
    # the default replicas apply to shared resources only where the node has no label
    assert rate({"nvidia.com/gpu.shared": "1"}, a100(), table) == Decimal("1.75")


class _FakeProm:
    def __init__(self, rows):
        self.rows = rows

    def _conn(self):
        return self

    def custom_query(self, query):
        assert "node_gpu_hourly_cost" in query
        return self.rows


def test_opencost_prices_from_prometheus_and_off_by_default():
    rows = [{"metric": {"node": "n1"}, "value": [0, "2.95"]}, {"metric": {"node": "n2"}, "value": [0, "NaN"]}]
    s = Settings(opencost_enabled=True, prometheus_url="http://prom:9090")
    assert opencost_prices(s, _FakeProm(rows)) == {"n1": Decimal("2.95")}
    assert opencost_prices(Settings(), _FakeProm(rows)) == {}
