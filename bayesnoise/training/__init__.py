"""Training score priors by denoising score matching (being moved here from bayesnoise.train)."""
