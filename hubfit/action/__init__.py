"""The GitHub Action on model repositories (``python -m hubfit.action``, run by ``action.yml``).

Modules, by concern:

* :mod:`hubfit.action.run` - the step: ``run(env)`` and ``main()``
* :mod:`hubfit.action.inputs` - the ``INPUT_*`` inputs and the runner's ``GITHUB_*`` context
* :mod:`hubfit.action.analysis` - the model as checked out, at the pull request's base, and the target
* :mod:`hubfit.action.git` - reading the base commit from the checkout's Git objects
* :mod:`hubfit.action.comment` - the sticky pull request comment (and the ``workflow_run`` pattern)
* :mod:`hubfit.action.card` - refreshing ``hub-repo``'s model card
* :mod:`hubfit.action.outputs` - the output directory, ``$GITHUB_OUTPUT``, the job summary, log lines

The comment's Markdown is :func:`hubfit.render.comment.render_comment`.
"""
