"""Small programs that the tests start as processes under test."""
