#!/usr/bin/python
# Apache-2.0
"""nodewall.host.apply: `nodewall apply` as an idempotent Ansible module."""
from __future__ import annotations

DOCUMENTATION = r"""
module: apply
short_description: Apply nodewall firewall profiles as one transaction
description:
  - Runs C(nodewall apply --check) to learn whether the kernel already matches the
    profiles; when it does not (and not in check mode), runs C(nodewall apply).
  - Bad input (a profile with an error) fails the task with nodewall's
    C(file:line:col) messages; the kernel is left as it was.
options:
  profiles:
    description: Profile files on the target, applied together.
    type: list
    elements: path
    required: true
  netns:
    description: Network namespace to apply in (C(ip netns) name); default the host's.
    type: str
  state_dir:
    description: nodewall's state directory (default C(/var/lib/nodewall)).
    type: path
  backend:
    description: Override C(settings.backend).
    type: str
    choices: [auto, iptables, xdp, nftables]
  confirm_timeout:
    description:
      - Seconds after which the change reverts unless C(nodewall confirm) runs.
      - Omit for a change kept at once.
    type: float
  binary:
    description: The nodewall command.
    type: str
    default: nodewall
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Apply the node's profiles, reverted in 60 s unless confirmed
  nodewall.host.apply:
    profiles: [/etc/nodewall/profiles/base.toml]
    confirm_timeout: 60
  register: applied
"""

RETURN = r"""
plan:
  description: The changes (empty when nothing was to do).
  type: list
  elements: str
  returned: always
generation:
  description: The generation applied (when one was).
  type: int
  returned: when changed and not in check mode
pending_confirm:
  description: Whether the change waits for C(nodewall confirm).
  type: bool
  returned: always
"""

import re

from ansible.module_utils.basic import AnsibleModule

NOTHING_TO_DO = 3
_APPLIED = re.compile(r"applied generation (\d+)")
_LOCATED = re.compile(r"^\S+:\d+:\d+: ")


def _global_args(params: dict) -> list[str]:
    args = [params["binary"]]
    if params["netns"]:
        args += ["--netns", params["netns"]]
    if params["state_dir"]:
        args += ["--state-dir", params["state_dir"]]
    return args


def _fail(module: AnsibleModule, what: str, rc: int, out: str, err: str) -> None:
    lines = [ln for ln in (err or out).splitlines() if ln.strip()]
    located = [ln for ln in lines if _LOCATED.match(ln)]
    module.fail_json(msg=f"nodewall {what} failed (exit {rc}): " + "\n".join(lines),
                     rc=rc, stdout=out, stderr=err, errors=located)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "profiles": {"type": "list", "elements": "path", "required": True},
            "netns": {"type": "str"},
            "state_dir": {"type": "path"},
            "backend": {"type": "str", "choices": ["auto", "iptables", "xdp", "nftables"]},
            "confirm_timeout": {"type": "float"},
            "binary": {"type": "str", "default": "nodewall"},
        },
        supports_check_mode=True,
    )
    p = module.params
    backend = ["--backend", p["backend"]] if p["backend"] else []
    base = _global_args(p)
    rc, out, err = module.run_command([*base, "apply", "--check", *backend, *p["profiles"]])
    if rc == NOTHING_TO_DO:
        module.exit_json(changed=False, plan=[], pending_confirm=False,
                         msg="the kernel already matches these profiles")
    if rc != 0:
        _fail(module, "apply --check", rc, out, err)
    plan = [ln for ln in out.splitlines() if ln.strip() and not ln.endswith("would be made")]
    diff = {"prepared": "\n".join(plan) + "\n"}
    if module.check_mode:
        module.exit_json(changed=True, plan=plan, diff=diff, pending_confirm=False)
    confirm = ["--confirm-timeout", str(p["confirm_timeout"])] \
        if p["confirm_timeout"] is not None else []
    rc, out, err = module.run_command(
        [*base, "apply", "--origin", "ansible", *confirm, *backend, *p["profiles"]])
    if rc != 0:
        _fail(module, "apply", rc, out, err)
    found = _APPLIED.search(out)
    module.exit_json(changed=True, plan=plan, diff=diff, stdout=out,
                     generation=int(found.group(1)) if found else None,
                     pending_confirm=p["confirm_timeout"] is not None)


if __name__ == "__main__":
    main()
