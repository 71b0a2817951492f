"""The README lists every role variable; the example inventory for a real host decrypts and resolves."""

from __future__ import annotations

import json
import re
import subprocess

import yaml
from conftest import REPO, lab_env

README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert m, title
    return m.group(1)


def test_every_role_variable_is_in_defaults_spec_and_readme() -> None:
    section = _section("Role variables")
    for role in ("gate0", "gate0_refresh"):
        defaults = yaml.safe_load((REPO / f"roles/{role}/defaults/main.yml").read_text())
        spec = yaml.safe_load((REPO / f"roles/{role}/meta/argument_specs.yml").read_text())
        options = spec["argument_specs"]["main"]["options"]
        public = {k for k in defaults if not k.startswith("__")}
        assert set(options) >= public, public - set(options)
        for name in set(options) | public:
            assert f"`{name}`" in section, name


def test_every_check_id_is_in_the_readme() -> None:
    ids = yaml.safe_load((REPO / "roles/gate0/vars/main.yml").read_text())["__gate0_check_ids"]
    section = _section("Check ids")
    assert all(f"`{cid}`" in section for cid in ids)


def test_seed_host_example_decrypts_with_the_example_vault_password() -> None:
    inv = REPO / "inventories/seed_host"
    assert (inv / "group_vars/gate0_databases/vault.yml").read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
    r = subprocess.run(["ansible-inventory", "-i", str(inv), "--vault-password-file",
                        str(inv / "vault-password.example"), "--host", "contabo"],
                       cwd=REPO, env=lab_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    host = json.loads(r.stdout)
    assert host["vault_gate0_production_login_password"].startswith("example-")
    assert host["vault_gate0_receipt_secret"].startswith("example-")
    assert host["gate0_production_allowed_databases"] == ["directus", "incomex_metadata", "workflow"]
    assert "EXAMPLE" in (inv / "vault-password.example").read_text()


def _modules() -> list[tuple[str, str]]:
    return [(str(path.parent.relative_to(REPO)), path.stem)
            for folder in ("library", "roles/gate0/library")
            for path in sorted((REPO / folder).glob("*.py")) if not path.stem.startswith("_")]


def test_every_module_is_documented_for_ansible_doc() -> None:
    """Each module's DOCUMENTATION, EXAMPLES and RETURN render with ansible-doc."""
    modules = _modules()
    assert {"pg_fingerprint", "clone_isolation", "disk_headroom", "gate0_observe"} <= {m for _, m in modules}
    for folder, name in modules:
        r = subprocess.run(["ansible-doc", "-M", folder, name], cwd=REPO, env=lab_env(),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (name, r.stderr)
        assert "[ERROR]" not in r.stderr and "EXAMPLES" in r.stdout and "RETURN VALUES" in r.stdout, name


def test_no_file_points_to_a_document_the_project_does_not_have() -> None:
    """README and code explain the project by themselves: no reference to the design notes it was
    built from (they are not part of it)."""
    import subprocess

    names = ("DESIGN" + ".md", "STYLE" + ".md", "TOOLCHAIN" + ".md")
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    hits = []
    for rel in files.split():
        path = REPO / rel
        text_kinds = (".py", ".yml", ".yaml", ".md", ".sh", ".j2", ".cfg", ".txt")
        if not path.is_file() or path.suffix not in text_kinds:
            continue
        text = path.read_text(errors="ignore")
        hits += [f"{rel}: {n}" for n in names if n in text]
    assert hits == []
