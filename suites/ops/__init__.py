"""Op conformance catalog (see issue 5). Empty until the catalog lands."""
