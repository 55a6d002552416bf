"""``biocoreset run``: the run file (:mod:`~biocoreset.run.file`), its pre-flight check
(:mod:`~biocoreset.run.check`), the driver (:mod:`~biocoreset.run.pipeline`) and the demo
(:mod:`~biocoreset.run.demo`).

Nothing is imported here; import the module you need.
"""
