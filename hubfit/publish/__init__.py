"""Publishing a Report: the model-card section, Hub discussion comments and GitHub pull-request comments.

Modules (import the one you need; nothing heavy is imported here):

* :mod:`hubfit.publish.cardtext` - byte-exact editing of the ``<!-- hubfit:start -->`` section of README.md
* :mod:`hubfit.publish.card` - rendering the section from a Report and writing it to the Hub (PR or commit)
* :mod:`hubfit.publish.discussions` - the sticky Hub discussion comment
* :mod:`hubfit.publish.github` - ``GitHubClient(token, api_url).upsert_sticky_comment(...)``
* :mod:`hubfit.markdown` - escaping of repository-supplied strings (shared with the renderers)
"""
