"""Fleet operations: drift audit (``audit``, ``drift``) and benchmark helpers."""
