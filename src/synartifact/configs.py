"""Every script's configuration dataclasses, parsed by TRL's ``TrlParser`` (YAML via ``--config``, flags override).

Each field has a ``help`` so that ``--help`` documents it. Script arguments subclass TRL's ``ScriptArguments``;
training arguments are TRL's own ``SFTConfig`` / ``DDPOConfig`` with our defaults where theirs do not fit.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------------------------
# SFT (the artifact classifier) — owned by the classifier work
# ---------------------------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------------------------
# DDPO (artifact alleviation) — owned by the alleviation work
# ---------------------------------------------------------------------------------------------------------------
