"""Binds every scenario of features/ to pytest (pytest-bdd's ``scenarios``)."""

from pytest_bdd import scenarios

scenarios("../features")
