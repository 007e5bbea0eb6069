"""Local stand-ins for cloud APIs (tests and the demo): each speaks the real wire protocol."""
