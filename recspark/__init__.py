"""recspark: book recommendations on Apache Spark from the UCSD Goodreads Book Graph."""

__version__ = "0.1.0"
