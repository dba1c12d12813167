"""deploy/: the compose file, the Kubernetes manifests, the container files and the systemd unit are
well formed, agree with one another (the vLLM replicas lumbung's config names are the ones deployed),
and every lumbung setting they set exists; the configs they carry load as lumbung's own settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lumbung.settings import ENV_PREFIX, Settings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FIELDS = set(Settings.model_fields)


def settings_of(text: str, tmp_path: Path) -> Settings:
    path = tmp_path / "lumbung.yaml"
    path.write_text(text)
    return load_settings(path, environ={})[0]


def lumbung_env(names: list[str]) -> list[str]:
    """The LUMBUNG_* names among ``names`` that are no setting (LUMBUNG_CONFIG names the file)."""
    return [
        n
        for n in names
        if n.startswith(ENV_PREFIX) and n != "LUMBUNG_CONFIG" and n[len(ENV_PREFIX) :].lower() not in FIELDS
    ]


def replicas_of(settings: Settings) -> list[str]:
    (gpu,) = [p for p in settings.providers if p.kind == "vllm"]
    return gpu.replica_urls


def test_compose_runs_two_gateways_over_the_vllm_replicas_it_names(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = compose["services"]
    gateways = [name for name, s in services.items() if "lumbung" in str(s.get("image"))]
    vllms = sorted(name for name, s in services.items() if "vllm-openai" in str(s.get("image")))
    assert len(gateways) == 2 and len(vllms) >= 2
    assert {"redis", "postgres"} <= set(services)
    config = settings_of((DEPLOY / "lumbung.compose.yaml").read_text(), tmp_path)
    assert replicas_of(config) == [f"http://{name}:8000/v1" for name in vllms]
    assert config.redis_url == "redis://redis:6379/0"  # both gateways share limits and provider marks
    for name in vllms:
        command = services[name]["command"]
        assert command[command.index("--port") + 1] == "8000"
    for name in gateways:
        env = services[name]["environment"]
        assert not lumbung_env(list(env))
        assert any(v.startswith("./lumbung.compose.yaml:") for v in services[name]["volumes"])
    named = set(compose["volumes"])
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert used <= named


def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / "k8s" / resource).read_text()) if d]
    return docs


def test_kubernetes_manifests_are_whole_and_agree(tmp_path: Path) -> None:
    docs = manifests()
    assert all(d.get("apiVersion") and d.get("kind") and d["metadata"].get("name") for d in docs)
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    config = settings_of(by["ConfigMap", "lumbung-config"]["data"]["lumbung.yaml"], tmp_path)
    vllm = by["StatefulSet", "vllm"]
    assert by["Service", "vllm"]["spec"]["clusterIP"] == "None"  # one name per pod, lumbung balances
    assert replicas_of(config) == [f"http://vllm-{i}.vllm:8000/v1" for i in range(vllm["spec"]["replicas"])]
    assert "--port=8000" in vllm["spec"]["template"]["spec"]["containers"][0]["args"]
    redis = by["Service", "redis"]["spec"]["ports"][0]["port"]
    assert config.redis_url == f"redis://redis:{redis}/0"  # every gateway names the one Redis Service
    gateway = by["Deployment", "lumbung"]
    assert gateway["spec"]["replicas"] == 2
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert not lumbung_env([e["name"] for e in container["env"]])
    assert not lumbung_env(list(by["Secret", "lumbung-keys"]["stringData"]))
    for d in docs:  # every Service selects pods something here runs
        if d["kind"] == "Service" and "selector" in d["spec"]:
            assert any(
                w["kind"] in ("Deployment", "StatefulSet")
                and w["spec"]["template"]["metadata"]["labels"] == d["spec"]["selector"]
                for w in docs
            ), d["metadata"]["name"]


@pytest.mark.parametrize("name", ["Containerfile", "Containerfile.gpu"])
def test_container_files_set_only_settings_that_exist(name: str) -> None:
    text = (DEPLOY / name).read_text()
    names = re.findall(r"\b(LUMBUNG_[A-Z_]+)=", text)
    assert names and not lumbung_env(names)
    assert re.search(r"^FROM ", text, re.MULTILINE) and 'ENTRYPOINT ["lumbung"]' in text
    assert "/health" in text


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    text = (DEPLOY / "lumbung.service").read_text()
    assert not lumbung_env(re.findall(r"Environment=(LUMBUNG_[A-Z_]+)=", text))
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # Verified with this checkout's lumbung where the unit expects /opt/lumbung's.
    unit = tmp_path / "lumbung.service"
    unit.write_text(text.replace("/opt/lumbung/bin/lumbung", str(Path(sys.executable).with_name("lumbung"))))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in result.stderr.splitlines() if "lumbung.service" in line]
    assert result.returncode == 0 and not problems, result.stderr
