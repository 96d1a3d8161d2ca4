//! The registry: the families of one process (or one test), written out in registration order.

use std::sync::{Arc, Mutex};

use super::encode::TextEncoder;
use super::family::{Collect, Family, Series};

#[derive(Default)]
pub struct Registry {
    families: Mutex<Vec<Arc<dyn Collect>>>,
}

impl Registry {
    pub fn register<M: Series, const N: usize>(&self, family: Family<M, N>) -> Arc<Family<M, N>> {
        let family = Arc::new(family);
        self.families
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(family.clone());
        family
    }

    pub fn encode(&self, out: &mut TextEncoder) {
        let families = self
            .families
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for f in families {
            f.collect(out);
        }
    }
}
