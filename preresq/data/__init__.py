"""Records, benchmark cards, label readers, training rows and the demo sets."""
