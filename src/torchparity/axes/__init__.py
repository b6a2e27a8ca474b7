"""The axes a case is measured over: devices, precisions, matrix expansion
into cells, and shards."""
