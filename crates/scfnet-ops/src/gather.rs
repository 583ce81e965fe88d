//! Rows of a table picked by a fixed index, differentiable in the table: Swin's
//! relative-position bias (`(ws⁴)` picks from a `((2·ws − 1)², heads)` table).
//!
//! candle's `index_select` is right everywhere, but its backward on CUDA (`index_add`) takes
//! ~6 ms per call for Swin-B's 20,736 picks, a quarter of a training step. Off the CPU the
//! gather is therefore a product with a constant one-hot matrix `(picks, rows)`: the same values
//! (each output is one table value times 1 plus zeros), and a backward that is one matrix
//! product. The one-hot matrix is built once per index, device and dtype and shared by every
//! layer with the same index.

use std::sync::{Arc, Mutex, OnceLock};

use candle_core::{DType, Device, Result, Tensor};

use crate::dispatch::uses_cpu_kernels;

/// A fixed list of row numbers into tables of `rows` rows.
#[derive(Clone, Debug)]
pub struct RowGather {
    index: Arc<Vec<u32>>,
    rows: usize,
}

/// One-hot matrices built so far: (index, rows, device, dtype, matrix).
type OneHots = Vec<(Arc<Vec<u32>>, usize, Device, DType, Tensor)>;

fn one_hots() -> &'static Mutex<OneHots> {
    static CACHE: OnceLock<Mutex<OneHots>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

impl RowGather {
    /// Picks `index[i]` for output row `i`; every entry must be below `rows`.
    pub fn new(index: Vec<u32>, rows: usize) -> Result<Self> {
        if let Some(&bad) = index.iter().find(|&&i| i as usize >= rows) {
            candle_core::bail!("row-gather: index {bad} into a table of {rows} rows");
        }
        Ok(Self {
            index: Arc::new(index),
            rows,
        })
    }

    /// The picked rows of `table` `(rows, D)`, as `(picks, D)`.
    pub fn apply(&self, table: &Tensor) -> Result<Tensor> {
        let (rows, _) = table.dims2()?;
        if rows != self.rows {
            candle_core::bail!(
                "row-gather: table of {rows} rows, index built for {}",
                self.rows
            );
        }
        if uses_cpu_kernels(table) {
            let index = Tensor::from_slice(&self.index, self.index.len(), table.device())?;
            return table.index_select(&index, 0);
        }
        self.one_hot(table.device(), table.dtype())?.matmul(table)
    }

    /// The constant `(picks, rows)` matrix with a 1 at `(i, index[i])`, from the cache.
    fn one_hot(&self, device: &Device, dtype: DType) -> Result<Tensor> {
        let mut cache = one_hots().lock().unwrap_or_else(|e| e.into_inner());
        let found = cache.iter().find(|(index, rows, d, t, _)| {
            *rows == self.rows && d.same_device(device) && *t == dtype && index == &self.index
        });
        if let Some((.., m)) = found {
            return Ok(m.clone());
        }
        let mut values = vec![0f32; self.index.len() * self.rows];
        for (i, &r) in self.index.iter().enumerate() {
            values[i * self.rows + r as usize] = 1.0;
        }
        let m = Tensor::from_vec(values, (self.index.len(), self.rows), device)?.to_dtype(dtype)?;
        cache.push((
            self.index.clone(),
            self.rows,
            device.clone(),
            dtype,
            m.clone(),
        ));
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn the_product_path_equals_index_select_in_values_and_gradient() -> Result<()> {
        let table = Var::from_vec(
            (0..12).map(|v| v as f64 * 0.5 - 2.0).collect(),
            (4, 3),
            &Device::Cpu,
        )?;
        let gather = RowGather::new(vec![3, 0, 0, 2, 1, 3, 3], 4)?;
        let weights = Tensor::from_vec((0..21).map(|v| v as f64).collect(), (7, 3), &Device::Cpu)?;
        let kernel = gather.apply(&table)?;
        let kernel_grad = (&kernel * &weights)?.sum_all()?.backward()?;
        let generic = {
            let _g = crate::force_generic_path();
            gather.apply(&table)?
        };
        let generic_grad = (&generic * &weights)?.sum_all()?.backward()?;
        assert_eq!(kernel.to_vec2::<f64>()?, generic.to_vec2::<f64>()?);
        assert_eq!(kernel.to_vec2::<f64>()?[0], vec![2.5, 3.0, 3.5]);
        let g = |s: &candle_core::backprop::GradStore| {
            s.get(table.as_tensor()).unwrap().to_vec2::<f64>()
        };
        assert_eq!(g(&kernel_grad)?, g(&generic_grad)?);
        // Row 3 is picked by outputs 0, 5 and 6.
        assert_eq!(
            g(&kernel_grad)?[3],
            vec![0.0 + 15.0 + 18.0, 1.0 + 16.0 + 19.0, 2.0 + 17.0 + 20.0]
        );
        assert!(RowGather::new(vec![4], 4).is_err());
        Ok(())
    }
}
