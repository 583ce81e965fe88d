//! Constant tensors made once per device and reused: interpolation matrices, index vectors,
//! attention masks. A forward pass then uploads nothing: on a GPU an upload from ordinary memory
//! in the middle of a step also makes the host wait until the queued work has drained.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::{Device, DeviceLocation, Result, Tensor};

/// Entries kept per thread; past this many (many distinct sizes) the cache starts afresh.
const MAX_ENTRIES: usize = 4096;

thread_local! {
    /// This thread's constants, by (what and its parameters, device location).
    static CONSTANTS: RefCell<HashMap<(String, DeviceLocation), Tensor>> =
        RefCell::new(HashMap::new());
}

/// The constant tensor `key` on `device`, from this thread's cache, made by `make` on a miss.
///
/// `key` names the tensor and every parameter it depends on, its dtype included (e.g.
/// `"interpolation:352:11:false:F32"`). The device is part of the key, and a hit must be on the
/// very same device (two handles on one GPU run different streams: a tensor of one is remade for
/// the other). The caller must not modify the returned tensor in place.
pub fn cached_constant(
    key: &str,
    device: &Device,
    make: impl FnOnce() -> Result<Tensor>,
) -> Result<Tensor> {
    let slot = (key.to_string(), device.location());
    let hit = CONSTANTS.with(|c| c.borrow().get(&slot).cloned());
    if let Some(t) = hit.filter(|t| t.device().same_device(device)) {
        return Ok(t);
    }
    let t = make()?;
    if !t.device().same_device(device) {
        candle_core::bail!(
            "constant {key}: made on {:?}, asked for on {:?}",
            t.device().location(),
            device.location()
        );
    }
    CONSTANTS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= MAX_ENTRIES {
            c.clear();
        }
        c.insert(slot, t.clone());
    });
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_storage(a: &Tensor, b: &Tensor) -> bool {
        let (sa, _) = a.storage_and_layout();
        let (sb, _) = b.storage_and_layout();
        std::ptr::eq(&*sa, &*sb)
    }

    #[test]
    fn a_constant_is_made_once_per_key() {
        let mut made = 0;
        let mut get = |key: &str, v: f32| {
            cached_constant(key, &Device::Cpu, || {
                made += 1;
                Tensor::full(v, 3, &Device::Cpu)
            })
            .unwrap()
        };
        let a = get("constants-test:a", 1.0);
        let again = get("constants-test:a", 9.0);
        let b = get("constants-test:b", 2.0);
        assert!(same_storage(&a, &again));
        assert_eq!(again.to_vec1::<f32>().unwrap(), vec![1.0; 3]);
        assert_eq!(b.to_vec1::<f32>().unwrap(), vec![2.0; 3]);
        assert_eq!(made, 2);
    }

    #[test]
    fn a_failed_make_is_not_cached() {
        let err = cached_constant("constants-test:fails", &Device::Cpu, || {
            candle_core::bail!("no")
        });
        assert!(err.is_err());
        let t = cached_constant("constants-test:fails", &Device::Cpu, || {
            Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu)
        })
        .unwrap();
        assert_eq!(t.dims(), &[2]);
    }
}
