"""Neural style transfer (lesson 11)."""
