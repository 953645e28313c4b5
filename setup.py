"""Build hook for the optional C engine of the capture reader (``dissect/port902/io/_fastscan.c``).

Everything else about the package lives in ``pyproject.toml``.  The extension is optional:
where no compiler (or no Python headers) is available the build prints a warning and the
package installs without it; ``dissect.port902.io.capture`` then uses its pure-Python engine.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dissect.port902.io._fastscan",
            sources=["dissect/port902/io/_fastscan.c"],
            optional=True,
        ),
        Extension(  # the dialogue decoder's dynamic programmes (infer/dialogue/fastalign.py drives it)
            "dissect.port902.infer.dialogue._fastalign",
            sources=["dissect/port902/infer/dialogue/_fastalign.c"],
            optional=True,
        ),
    ]
)
