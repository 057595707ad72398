"""The text-to-image generator: sampling (:mod:`.sampling`), the offline base's pre-training (:mod:`.pretrain`) and
``synartifact evaluate-generator``, the before/after comparison (:mod:`.evaluation`). DDPO itself is
:mod:`synartifact.ddpo`."""
