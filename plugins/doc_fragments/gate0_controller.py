"""Documentation of the attributes shared by the gate0 role's controller steps (roles/gate0/library/:
gate0_start, gate0_verdict, gate0_receipt - action plugins that run on the controller only)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
"""
