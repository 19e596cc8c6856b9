"""tinygan lab: watch a GAN learn in the browser, on tinygan's own backward passes.

    python -m tinygan.lab            # serves http://127.0.0.1:<free port>/ and opens it

Lesson 8's dense GAN learns a 2-D distribution (a ring of 8 Gaussians, a spiral, two moons, or
points drawn on the page), trained by ``StackedGANTrainer`` on NumPy while the page shows the
real and generated points, D's output over the plane, G's warped noise grid, the losses and
the modes covered.

  datasets.py   the 2-D distributions and how many modes generated points cover
  settings.py   defaults, presets, and the checks every value from the page passes
  session.py    one training run and the state the page draws
  server.py     the HTTP server: static page + JSON API (standard library only)
  static/       the page: plain HTML, CSS and JavaScript, no build step
"""
