"""Run a container of a chart-rendered pod with podman, the way the kubelet would run it.

The images are tested as the chart runs them, not as a developer would start them by hand: the pod
and container ``securityContext`` (uid and group, ``fsGroup``, read-only root filesystem, dropped
capabilities, no privilege escalation), the environment with its Downward API fields, the volumes
(``emptyDir``, ``secret`` files with their mode and the fsGroup, ``hostPath``), the service-account
token mount, args. What podman on a test machine cannot do the same way is said where it happens:
the network is the host's (the apiserver and the test listen on loopback), so ports may be moved;
resource limits are not applied (no cgroup controller to apply them with here).

    spec = deployment["spec"]["template"]["spec"]
    run = PodmanContainer.from_pod(spec, "operator", image=ref, uid=1000720001, workdir=tmp,
                                   fields={"metadata.name": "op-0", "metadata.namespace": "gs"},
                                   secrets={"gs-webhook-tls": {"tls.crt": b"..."}},
                                   service_account=SaMount(token, ca_pem, "gs"))
    run.start(); ...; run.logs(); run.remove()
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TOOLS = ("buildah", "podman")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def podman_env() -> dict[str, str]:
    """Same storage as scripts/build-images.sh (vfs unless the caller chose), so podman sees what buildah built."""
    return dict(os.environ, STORAGE_DRIVER=os.environ.get("STORAGE_DRIVER", "vfs"))


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, env=podman_env(), timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} ... failed: {proc.stderr.strip()}")
    return proc


def runtime_args() -> list[str]:
    """crun refuses hosts with hybrid (v1 + v2) cgroups; runc runs there. Limits: the container gets the
    open-files limit this process has (never more: raising it needs CAP_SYS_RESOURCE) and a bounded
    process count instead of podman's root default, which this host refuses."""
    args = ["--runtime", "runc"] if shutil.which("runc") else []
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return [*args, "--ulimit", f"nofile={soft}:{soft}", "--ulimit", "nproc=4096:4096"]


@dataclass(frozen=True)
class SaMount:
    """The projected service-account volume the kubelet mounts when automountServiceAccountToken is on."""
    token: str
    ca_pem: str
    namespace: str


@dataclass
class PodmanContainer:
    name: str
    args: list[str]
    image: str
    command_args: list[str] = field(default_factory=list)

    @classmethod
    def from_pod(cls, pod: dict[str, Any], container_name: str, *, image: str, workdir: Path,
                 uid: int | None = None, gid: int | None = None, fields: dict[str, str] | None = None,
                 secrets: dict[str, dict[str, bytes]] | None = None, host_paths: dict[str, Path] | None = None,
                 env_overrides: dict[str, str] | None = None, extra_mounts: tuple[tuple[Path, str], ...] = (),
                 service_account: SaMount | None = None, name: str | None = None) -> PodmanContainer:
        """``uid``/``gid`` replace the pod's runAsUser/runAsGroup (an arbitrary uid, as OpenShift assigns);
        ``host_paths`` maps a hostPath volume's path to the folder that stands for it here."""
        c = next(c for c in pod["containers"] if c["name"] == container_name)
        psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
        run_uid = uid if uid is not None else csc.get("runAsUser", psc.get("runAsUser", 0))
        run_gid = gid if gid is not None else csc.get("runAsGroup", psc.get("runAsGroup", 0))
        if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) and run_uid == 0:
            raise ValueError("runAsNonRoot with uid 0: the kubelet would refuse to start this container")
        # --passwd=false: podman would otherwise add the uid to the image's /etc/passwd, which no kubelet
        # does (and which hid the operator's crash under a uid without an entry).
        args = ["--name", name or f"gs-{container_name}-{os.getpid()}", "--network", "host", *runtime_args(),
                "--user", f"{run_uid}:{run_gid}", "--passwd=false",
                "--hostname", (fields or {}).get("metadata.name", container_name)]
        fs_group = psc.get("fsGroup")
        if fs_group is not None:
            args += ["--group-add", str(fs_group)]
        if csc.get("readOnlyRootFilesystem"):
            args += ["--read-only", "--read-only-tmpfs=false"]  # only the pod's own volumes are writable
        if csc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        caps = csc.get("capabilities") or {}
        args += [a for cap in caps.get("drop") or [] for a in ("--cap-drop", cap)]
        args += [a for cap in caps.get("add") or [] for a in ("--cap-add", cap)]
        if csc.get("privileged"):
            args.append("--privileged")

        env = _env(c.get("env") or [], fields or {}, secrets or {})
        env.update(env_overrides or {})
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]

        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for i, m in enumerate(c.get("volumeMounts") or []):
            src = _volume_source(volumes[m["name"]], workdir / f"vol-{i}-{m['name']}", secrets or {},
                                 host_paths or {}, fs_group)
            args += ["--volume", f"{src}:{m['mountPath']}:{'ro' if m.get('readOnly') else 'rw'}"]
        if service_account is not None and pod.get("automountServiceAccountToken") is not False:
            sa = workdir / "serviceaccount"
            sa.mkdir(parents=True, exist_ok=True)
            for fname, text in (("token", service_account.token), ("ca.crt", service_account.ca_pem),
                                ("namespace", service_account.namespace)):
                (sa / fname).write_text(text)
                (sa / fname).chmod(0o644)  # the kubelet's projected volume: readable by any uid in the pod
            args += ["--volume", f"{sa}:{SA_MOUNT}:ro"]
        for src, dest in extra_mounts:
            args += ["--volume", f"{src}:{dest}:ro"]
        if c.get("command"):
            args += ["--entrypoint", json.dumps(c["command"])]
        return cls(name=args[1], args=args, image=image, command_args=list(c.get("args") or []))

    def start(self) -> PodmanContainer:
        podman("rm", "-f", self.name, check=False)
        podman("run", "--detach", *self.args, self.image, *self.command_args)
        return self

    def running(self) -> bool:
        proc = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return proc.stdout.strip() == "true"

    def logs(self) -> str:
        proc = podman("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def host_pid(self) -> int:
        return int(podman("inspect", "--format", "{{.State.Pid}}", self.name).stdout.strip())

    def rss_bytes(self) -> int:
        """Resident memory of the container's main process, read from the host's /proc."""
        for line in Path(f"/proc/{self.host_pid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def exec(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *cmd, check=False)

    def remove(self) -> None:
        podman("rm", "-f", "-t", "5", self.name, check=False)


def _env(entries: list[dict[str, Any]], fields: dict[str, str], secrets: dict[str, dict[str, bytes]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for e in entries:
        if "value" in e:
            env[e["name"]] = str(e["value"])
            continue
        source = e.get("valueFrom") or {}
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path not in fields:
                raise KeyError(f"env {e['name']} needs the Downward API field {path}: pass it in fields")
            env[e["name"]] = fields[path]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = secrets.get(ref["name"], {}).get(ref["key"])
            if value is None:
                if ref.get("optional"):
                    continue
                raise KeyError(f"env {e['name']} needs secret {ref['name']}/{ref['key']}")
            env[e["name"]] = value.decode()
        else:
            raise ValueError(f"env {e['name']}: unsupported source {sorted(source)}")
    return env


def _volume_source(volume: dict[str, Any], folder: Path, secrets: dict[str, dict[str, bytes]],
                   host_paths: dict[str, Path], fs_group: int | None) -> Path:
    if "emptyDir" in volume:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)  # the kubelet creates emptyDir world-writable
        return folder
    if "secret" in volume:
        name = volume["secret"]["secretName"]
        if name not in secrets:
            raise KeyError(f"volume {volume['name']} needs secret {name}")
        folder.mkdir(parents=True, exist_ok=True)
        mode = volume["secret"].get("defaultMode", 0o644)
        for key, data in secrets[name].items():
            f = folder / key
            f.write_bytes(data)
            if fs_group is not None:  # the kubelet gives secret files to the pod's fsGroup
                os.chown(f, 0, fs_group)
            f.chmod(mode)
        folder.chmod(0o755)
        return folder
    if "hostPath" in volume:
        path = volume["hostPath"]["path"]
        if path not in host_paths:
            raise KeyError(f"volume {volume['name']} is hostPath {path}: say which folder stands for it")
        return host_paths[path]
    raise ValueError(f"volume {volume['name']}: unsupported source {sorted(set(volume) - {'name'})}")
