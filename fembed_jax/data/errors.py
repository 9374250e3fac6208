"""The one exception the data layer raises for bad input."""


class DataError(ValueError):
    """Invalid or unusable data: the message names the file (or source) and what is wrong."""
