"""What the two Gradio Spaces (the repository's ``spaces/classify/app.py`` and ``spaces/generate/app.py``) share,
one module per purpose:

- :mod:`.inputs`: checks that turn bad uploads, prompts and settings into one sentence for the user;
- :mod:`.events`: event wrappers (errors told on the page, ZeroGPU where available);
- :mod:`.models`: the classifier and the generator pair from environment variables, loaded once per process;
- :mod:`.tiny_models`: the tiny untrained stand-ins built offline when no model is configured;
- :mod:`.display`: an artifact report as the page shows it (boxes, table, summary, reward);
- :mod:`.examples`: the classify Space's example images;
- :mod:`.repair`: the classify Space's repair (the repairer, the inpainter, the summary).

Needs the ``spaces`` extra (gradio). Import the names from their modules; this package imports none of them, so
that importing one part stays cheap.
"""
