"""The checker's passes, one module each, run in order over one shared ``CheckContext``.

``declare`` (version, constants, blocks) -> ``networks`` (lowering to IR steps) ->
``sections`` (dataset and train, read from the section schema) -> ``cross`` (sections
against the network) -> ``memory`` (the estimate against the limit). ``netspec.ir.check``
composes them.
"""
