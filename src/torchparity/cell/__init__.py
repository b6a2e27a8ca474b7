"""One cell: inference, training and multi-sample cells from resolved parts to a row."""
