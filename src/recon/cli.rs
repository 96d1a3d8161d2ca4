//! `idm-sync recon`: placeholder replaced below.
