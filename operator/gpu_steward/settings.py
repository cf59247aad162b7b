"""The one place the operator's configuration comes from.

Helm values become environment variables (prefix ``GPU_STEWARD_``) on the operator Deployment;
this module turns them into one immutable ``Settings`` object that is logged once at start
(secrets redacted) and passed down. Nothing else reads the environment.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gpu_steward.policy.leadership import Timing
from gpu_steward.policy.shards import Shard


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GPU_STEWARD_", env_nested_delimiter="__", frozen=True)

    # Global shadow mode: when true, no mutating call reaches the cluster, whatever a policy says.
    dry_run: bool = False
    # Namespaces the operator watches; empty means all.
    namespaces: tuple[str, ...] = ()
    # The operator's own namespace (the chart's release namespace): only IdlePolicies here may select
    # other namespaces (spec.selector.namespaces / namespaceSelector); elsewhere a policy governs its own.
    platform_namespace: str = "gpu-steward"

    # Blast radius of idle suspensions (docs/idle.md, "Blast radius"): caps per pass and per rolling hour,
    # cluster-wide and per namespace; a circuit breaker that suspends none when one pass would suspend
    # more than breaker_percent of the watched workloads (and at least breaker_minimum); and a switch
    # that stops every suspension (warnings and reports go on). The switch can also be flipped at run
    # time in the controls ConfigMap; the hourly counts live in the record ConfigMap (both in
    # platform_namespace).
    suspensions_per_pass: int = Field(20, ge=0)
    suspensions_per_hour: int = Field(100, ge=0)
    suspensions_per_namespace_per_hour: int = Field(10, ge=0)
    breaker_percent: float = Field(30.0, gt=0, le=100)
    breaker_minimum: int = Field(5, ge=1)
    actions_paused: bool = False
    controls_configmap: str = "gpu-steward-controls"
    blast_record_configmap: str = "gpu-steward-blast-radius"

    # The state store (docs/store.md): the idle engine's per-workload state in ConfigMaps of
    # platform_namespace, <store_prefix>-000 … one per shard. 256 shards keep each under ~550 KiB at
    # 40,000 workloads even if every entry is at its largest; a shard nearing 768 KiB refuses writes and
    # says to raise store_shards.
    store_prefix: str = "gpusteward-idle"
    store_shards: int = Field(256, ge=1, le=4096)
    # The cache is refilled with one LIST this often (and at start, and after a conflict).
    store_resync_seconds: float = Field(600.0, gt=0)
    # Entries of workloads no pass has seen (deleted, finished) are dropped this long after their last write.
    store_retention_seconds: float = Field(86400.0, gt=0)
    # Upgrade: for this long after the store is created, a workload without an entry may have the previous
    # release's gpusteward.dev/idle-state annotation taken over once (opt-out bounds clamped to now + max).
    # Afterwards the annotation is only a mirror and is never read. 0: adopt nothing (a fresh install).
    legacy_adoption_seconds: float = Field(900.0, ge=0)

    # Evaluation loop cadence and how fresh a utilization sample must be to count.
    evaluation_interval_seconds: float = Field(30.0, gt=0)
    sample_max_age_seconds: float = Field(180.0, gt=0)

    # Utilization source: the node agents (default) or Prometheus with DCGM metrics.
    utilization_source: Literal["agents", "prometheus"] = "agents"
    agent_namespace: str = "gpu-steward"
    agent_label_selector: str = "app.kubernetes.io/component=agent"
    agent_port: int = 9400
    agent_timeout_seconds: float = Field(2.0, gt=0)
    agent_url_override: str | None = None
    # node name -> agent base URL, replacing discovery (local demo/tests: agents on loopback)
    agent_endpoints: dict[str, str] = Field(default_factory=dict)  # local demo/tests: agent reachable on loopback
    prometheus_url: str | None = None
    # Prometheus' TLS certificate is always verified: against this CA bundle (PEM file), else the
    # system's CAs. A bearer token, when Prometheus wants one, is read from this file (a mounted Secret
    # or a projected token) before each query set, so a rotated token is picked up.
    prometheus_ca_file: str | None = None
    prometheus_bearer_token_file: str | None = None
    # The labels that name a series' pod and namespace: "exported_pod"/"exported_namespace" where Prometheus
    # renamed dcgm-exporter's own labels (a scrape without honor_labels).
    prometheus_pod_label: str = Field("pod", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    prometheus_namespace_label: str = Field("namespace", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")

    # Prices: per GPU model (node label nvidia.com/gpu.product), a default, a currency.
    currency: str = "USD"
    default_gpu_hour_price: Decimal = Decimal("2.50")
    gpu_hour_prices: dict[str, Decimal] = Field(default_factory=dict)
    price_override_label: str = "gpusteward.dev/gpu-hour-price"
    # Node pool -> price; model -> price on spot nodes; MIG profile ("1g.10gb") -> price per slice-hour;
    # model -> MIG compute slices per GPU (7 when not listed); replicas per GPU where a shared
    # resource's node has no nvidia.com/gpu.replicas label. Precedence (docs/budgets.md): node
    # override > configured price (pool, spot, model) > OpenCost node_gpu_hourly_cost > default.
    pool_gpu_hour_prices: dict[str, Decimal] = Field(default_factory=dict)
    spot_gpu_hour_prices: dict[str, Decimal] = Field(default_factory=dict)
    mig_profile_prices: dict[str, Decimal] = Field(default_factory=dict)
    mig_slices_per_gpu: dict[str, int] = Field(default_factory=dict)
    gpu_replicas_default: int = Field(1, ge=1)
    # OpenCost's node_gpu_hourly_cost, queried from prometheus_url.
    opencost_enabled: bool = False
    # FinOps FOCUS export: GPU Steward allocates cost; the provider issues the invoice.
    focus_provider_name: str = "Kubernetes"
    focus_publisher_name: str = "GPU Steward"
    focus_invoice_issuer_name: str = "Kubernetes"
    focus_billing_account_id: str = "kubernetes"
    # Cost annotations on pods (docs/budgets.md, "What the cost annotations promise"): a value that changed
    # meaningfully (hourly rate, utilization average, a finished pod) is written at most this often per pod...
    cost_annotation_min_interval_seconds: float = Field(300.0, gt=0)
    # ...a pod whose values only accrue at most this often (fewer when the write budget is spent)...
    cost_annotation_refresh_seconds: float = Field(3600.0, gt=0)
    # ...and never more pod writes than this per second, cluster-wide, on average.
    cost_annotation_writes_per_second: float = Field(2.0, gt=0)
    # The lean watches list in pages of this many objects (the initial listing's memory peak: docs/scale.md).
    watch_page_size: int = Field(500, ge=10, le=5000)
    # Cost ledger and SuspendIdleFirst: a GPU sample below this utilization counts as idle time.
    cost_idle_util_percent: float = Field(5.0, ge=0, le=100)
    # GPUBudget onExceeded SuspendIdleFirst: how long before suspending an idle workload its owner is warned
    # (docs/budgets.md). A lease's notice period is its own gracePeriod.
    budget_suspend_notice_seconds: float = Field(900.0, ge=0)

    # Who owns a workload: the first of these labels/annotations that is set.
    owner_keys: tuple[str, ...] = ("gpusteward.dev/owner", "owner", "app.kubernetes.io/managed-by-user")
    owner_email_keys: tuple[str, ...] = ("gpusteward.dev/owner-email",)
    team_keys: tuple[str, ...] = ("gpusteward.dev/team", "team")
    cost_center_keys: tuple[str, ...] = ("gpusteward.dev/cost-center",)

    # Slack: an incoming webhook URL, or a bot token that DMs the owner. Both are secrets.
    slack_webhook_url: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_default_channel: str | None = None
    # With a signing secret and a bot token, notices carry Snooze / Resume buttons and the operator serves
    # Slack's interactivity Request URL (POST /slack/interactions) on this port; requests must be signed
    # and clicks come from the workload's or the budget's owners (the bot token's users.info tells who).
    slack_signing_secret: SecretStr | None = None
    slack_interactions_listen_addr: str = "0.0.0.0"
    slack_interactions_port: int = Field(8090, ge=0, le=65535)
    # Used Slack click ids (replay protection), in this ConfigMap of platform_namespace.
    slack_click_record_configmap: str = "gpu-steward-slack-clicks"

    # ExperimentLease approvals and pod ownership admission.
    approver_groups: tuple[str, ...] = ("gpu-steward-approvers",)
    ownership_admission: Literal["off", "warn", "enforce"] = "off"
    required_pod_labels: tuple[str, ...] = ("gpusteward.dev/owner", "gpusteward.dev/team")

    # Admission webhooks (lease approvals, pod ownership), served by the operator over HTTPS.
    webhook_enabled: bool = False
    webhook_listen_addr: str = "0.0.0.0"
    webhook_port: int = 9443
    webhook_host: str | None = None  # host name/IP the apiserver uses in the webhook URL
    webhook_cert_dir: str | None = None  # tls.crt/tls.key(/ca.crt) mounted; None: generate a self-signed pair
    # certificates: operator — the operator keeps its CA and serving pair in this Secret of its namespace
    # (platform_namespace), for the names of webhook_service, and sets the caBundle of
    # webhook_configuration_name's two configurations (gpu_steward.webhook_certs). Wins over webhook_cert_dir.
    webhook_cert_secret: str | None = None
    webhook_service: str | None = None

    metrics_port: int = 8080
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"

    # Deployment wiring the Helm chart sets (charts/gpu-steward, docs/install.md).
    # Leader election (invariant 8, one actor): replicas compete for this coordination.k8s.io Lease in
    # leader_election_namespace; only its holder runs the kopf handlers, loops and Slack endpoint, every
    # replica serves the admission webhooks. None: no election, this process acts (one replica: local
    # demo and tests). Needs 0 < retry period < renew deadline < lease duration.
    leader_election_lease_name: str | None = None
    leader_election_namespace: str = "default"
    leader_election_lease_duration_seconds: float = Field(15.0, gt=0)
    leader_election_renew_deadline_seconds: float = Field(10.0, gt=0)
    leader_election_retry_period_seconds: float = Field(2.0, gt=0)
    # The operator's own pod (the chart sets them from the downward API): it carries the
    # gpusteward.dev/leader label. Unset outside a pod.
    pod_name: str | None = None
    pod_namespace: str | None = None
    # kopf's liveness endpoint, e.g. "http://0.0.0.0:8081/healthz"; None serves none.
    liveness_endpoint: str | None = None
    # Whether kopf creates and patches the webhook configurations itself (named
    # webhook_configuration_name). False when the chart renders them (its own or a cert-manager
    # certificate); then the operator needs, and gets, no RBAC on webhook configurations.
    webhook_manage_configuration: bool = True
    webhook_configuration_name: str = "gpusteward.dev"

    # Sharded mode (docs/scale.md, gpu_steward.policy.shards): this process is shard shard_index of
    # shard_count and acts only in the namespaces that hash to it. Its Lease, idle store, blast-radius record
    # and cost history get a "-shard-<index>" suffix; the cluster-wide caps and write rate are split. 1: one
    # operator acts everywhere (the default).
    shard_count: int = Field(1, ge=1, le=64)
    shard_index: int = Field(0, ge=0, le=63)

    @model_validator(mode="after")
    def _election_margins(self) -> Settings:
        if self.leader_election_lease_name:
            self.leader_election_timing()  # raises when the margins are wrong
        self.shard()  # raises when the index is not below the count
        for name in ("suspensions_per_pass", "suspensions_per_hour"):
            cap = getattr(self, name)
            if 0 < cap < self.shard_count:  # each shard gets cap // shard_count: some would get none at all
                raise ValueError(f"{name} ({cap}) must be 0 or at least shard_count ({self.shard_count}): the "
                                 "shards split it, and a shard with a share of 0 could never suspend")
        return self

    def shard(self) -> Shard:
        return Shard(self.shard_index, self.shard_count)

    def leader_election_timing(self) -> Timing:
        return Timing(lease_duration=self.leader_election_lease_duration_seconds,
                      renew_deadline=self.leader_election_renew_deadline_seconds,
                      retry_period=self.leader_election_retry_period_seconds)

    def redacted(self) -> dict[str, Any]:
        """What is safe to log: every secret replaced by whether it is set, and every credential a URL
        can carry (``user:password@``, a token in the query) masked, wherever a URL appears."""
        out = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            out[name] = "<set>" if getattr(self, name) is not None else None
        return {k: redact_value(v) for k, v in out.items()}


SECRET_FIELDS = ("slack_webhook_url", "slack_bot_token", "slack_signing_secret")
_SECRET_QUERY_KEYS = ("token", "key", "secret", "password", "passwd", "auth", "sig", "signature", "credential")
REDACTED = "<redacted>"


def redact_url(text: str) -> str:
    """``text`` without credentials if it is a URL: userinfo and secret-looking query values masked."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.scheme or not parts.netloc:
        return text
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if any(s in k.lower() for s in _SECRET_QUERY_KEYS) else v) for k, v in pairs],
                          safe="<>")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_value(value: Any) -> Any:
    """Every string inside ``value`` (nested dicts and lists too) passed through ``redact_url``."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value
