"""The survivor's own pages (issue 20; docs/survivor-pages.md): server-rendered HTML
under /s/, in the survivor's language, reached with a single-use link.

HTTP surface at the top of the layers, beside the composition: it uses the domains
(subjects, consents, organizations, policy) and no domain imports it.
"""
