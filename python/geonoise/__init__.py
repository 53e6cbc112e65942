"""geonoise in a notebook: the figure as an anywidget (see `Figure`)."""

from .figure import Figure, static_dir

__all__ = ["Figure", "static_dir"]
__version__ = "0.1.0"
