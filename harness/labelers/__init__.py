"""Human-eval proxies: simulated annotators and panels that compare responses."""
