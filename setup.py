"""The one thing pyproject.toml cannot say: the TCMU handler's optional native READ/WRITE path
(lioctl/tcmu/_fastpath.c). optional=True: without a C compiler or Python's headers lioctl
installs anyway and the handler serves every command in Python."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("lioctl.tcmu._fastpath", ["lioctl/tcmu/_fastpath.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                                 "-Wno-missing-field-initializers"])])
